# The image every Kubeflow component and the KServe predictor run in (components/, pipelines/,
# `python -m cplvad.kserve_predictor`): the cplvad package with the `pipelines` and `serving` extras, every
# dependency at the exact pin of constraints.txt (the set CI tests), a non-root user, `cplvad` as
# entrypoint (KFP and KServe set their own command, so they run Python directly).
#
#   docker build -t ghcr.io/<org>/cplvad:sha-$(git rev-parse HEAD) .   (CI pushes it by commit and records
#   the digest; pipelines and deployments name it by digest: see README, "Kubeflow")
#
# The base image is pinned by digest, so a rebuild of the same commit starts from the same bytes; to move
# to a newer python:3.11-slim-bookworm, look its digest up (`docker buildx imagetools inspect
# python:3.11-slim-bookworm`) and change BASE_IMAGE below in a commit of its own.
#
# CUDA: the pinned PyTorch wheels carry it (torch 2.14.1 and its nvidia-*-cu13 runtime libraries are in
# constraints.txt), so the base only needs Python 3.11, the version CI runs. A GPU node needs an NVIDIA
# driver for CUDA 13 and the NVIDIA device plugin, which exposes the GPUs a task requests (the image does
# not set NVIDIA_VISIBLE_DEVICES, so a CPU task on a GPU node sees none; locally: docker run --gpus all).
# A PyTorch base works too (--build-arg BASE_IMAGE=pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime, with
# Python >= 3.11): the venv sees the base's packages, so its torch is kept when it equals the pin, and pins
# the base does not meet go into the venv, shadowing the base's versions instead of uninstalling them.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="cplvad" \
      org.opencontainers.image.description="CPL-VAD weakly supervised video anomaly detection (CLI, Kubeflow components)" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    MPLCONFIGDIR=/tmp/matplotlib

RUN python -m venv --system-site-packages /opt/venv

# PyTorch first, in its own layer: the largest download, kept until its pins change.
COPY constraints.txt /opt/cplvad/constraints.txt
RUN pip install --no-cache-dir -c /opt/cplvad/constraints.txt torch==2.14.1 torchvision==0.29.1

WORKDIR /opt/cplvad/src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir -c /opt/cplvad/constraints.txt ".[pipelines,serving]" \
    && pip check \
    && cplvad --help > /dev/null

# Non-root user (numeric, so Kubernetes can verify runAsNonRoot). The KFP v2 launcher stages artifacts under
# /gcs, /minio, /s3 and /oci, which a non-root user cannot create, so they exist and belong to it.
RUN groupadd --gid 1000 cplvad \
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash cplvad \
    && mkdir -p /gcs /minio /s3 /oci /workspace \
    && chown cplvad:cplvad /gcs /minio /s3 /oci /workspace
USER 1000:1000
WORKDIR /workspace

ENTRYPOINT ["cplvad"]
CMD ["--help"]
