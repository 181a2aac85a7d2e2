"""The registered model on KServe: the custom predictor (``python -m cplvad.kserve_predictor``) served by
KServe's own model server on a free 127.0.0.1 port, loading the model from a real mlflow server's registry
and scoring a V2 inference request of two videos of different lengths (the same numbers as the MLflow
model); and the InferenceService that ``python -m pipelines deploy`` writes, validated with the ``kserve``
package's InferenceService model."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import tiny_config
from services import free_port

kserve = pytest.importorskip("kserve")
from kserve.protocol.infer_type import InferInput, InferRequest  # noqa: E402

from cplvad.modeling.factory import read_model_config  # noqa: E402
from cplvad.tracking.pipeline_run import open_parent  # noqa: E402
from cplvad.tracking.registry import register_model  # noqa: E402
from cplvad.workflow import train_stage  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMAGE = "registry.example.com/team/cplvad@sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def registered(demo_manifest, mlflow_server, tmp_path_factory) -> tuple[str, Path]:
    """A tiny model registered as ``<unique name>@candidate`` on the mlflow server; (URI, model dir)."""
    name = f"kserve-{uuid.uuid4().hex[:8]}"
    config = tiny_config(f"tracking.registered_model={name}", f"tracking.experiment={name}")
    model_dir = tmp_path_factory.mktemp("kserve") / "model"
    train_stage(demo_manifest, model_dir, config, stage=1, progress=False)
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server
    try:
        register_model(
            model_dir, open_parent(config), config, dataset="cplvad-demo", metrics={"frame_auc_binary": 1.0}
        )
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    return f"models:/{name}@candidate", model_dir


def _wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the KServe predictor did not become ready:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)


def _request(videos: list[tuple[str, np.ndarray]], lengths: list[int] | None = None) -> InferRequest:
    features = np.concatenate([f for _, f in videos]).astype(np.float32)
    tensors = {
        "features": features,
        "lengths": np.array(lengths or [len(f) for _, f in videos], dtype=np.int64),
        "name": np.array([n for n, _ in videos], dtype=object),
    }
    inputs = []
    for name, array in tensors.items():
        tensor = InferInput(
            name, list(array.shape), {"f": "FP32", "i": "INT64", "O": "BYTES"}[array.dtype.kind]
        )
        tensor.set_data_from_numpy(array, binary_data=False)
        inputs.append(tensor)
    return InferRequest(model_name="cplvad", infer_inputs=inputs, request_id="r1")


def _infer(base: str, model: str, request: InferRequest) -> Any:
    async def call() -> Any:
        client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", timeout=120))
        return await client.infer(base, request, model_name=model)

    return asyncio.run(call())


@pytest.mark.slow
def test_kserve_serves_the_registered_model_over_the_v2_protocol(registered, mlflow_server, tmp_path):
    uri, model_dir = registered
    _, meta = read_model_config(model_dir)
    port, grpc_port, log = free_port(), free_port(), tmp_path / "predictor.log"
    cmd = [
        sys.executable,
        "-m",
        "cplvad.kserve_predictor",
        f"--model_uri={uri}",
        "--model_name=cplvad",
        f"--http_port={port}",
        f"--grpc_port={grpc_port}",
        "--enable_grpc=false",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{base}/v2/models/cplvad/ready", proc, log)
        rng = np.random.default_rng(0)
        videos = [
            ("short", rng.normal(size=(5, meta.feature_dim))),
            ("long", rng.normal(size=(70, meta.feature_dim))),
        ]
        response = _infer(base, "cplvad", _request(videos))
        out = {o.name: o for o in response.outputs}
        assert list(out["name"].as_numpy()) == ["short", "long"]
        assert out["lengths"].as_numpy().tolist() == [5, 70]
        anomaly, classes = out["anomaly"].as_numpy(), out["classes"].as_numpy()
        assert anomaly.shape == (75,) and classes.shape == (75, len(meta.classes))
        assert list(out["class_names"].as_numpy()) == list(meta.classes)
        assert response.parameters["model_version"] == "1"
        # the same numbers as the MLflow model of the same registered version
        mlflow.set_tracking_uri(mlflow_server)
        expected = mlflow.pyfunc.load_model(uri).predict(
            pd.DataFrame({"name": [n for n, _ in videos], "features": [f for _, f in videos]})
        )
        np.testing.assert_allclose(anomaly, np.concatenate([r["anomaly"] for r in expected]), atol=1e-5)
        np.testing.assert_allclose(classes, np.concatenate([r["classes"] for r in expected]), atol=1e-5)
        # a malformed request is a 400 that says what is wrong
        with pytest.raises(httpx.HTTPStatusError, match="400") as err:
            _infer(base, "cplvad", _request(videos, lengths=[5, 60]))
        assert "must add up to the number of rows" in str(err.value.response.text)
        with urllib.request.urlopen(f"{base}/v2/models/cplvad", timeout=10) as response:
            metadata = yaml.safe_load(response.read())
        assert {"name": "features", "datatype": "FP32", "shape": [-1, meta.feature_dim]} in metadata["inputs"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def _validated(cls_name: str, data: Any) -> Any:
    """``data`` (a manifest's mapping) rebuilt as ``cls_name``, the kserve (or Kubernetes) API model that
    types it: every key must be a field of the model (a misspelt or misplaced key fails) and every model's
    own checks run (required fields)."""
    import re

    from kubernetes import client as k8s

    if cls_name.startswith("list["):
        return [_validated(cls_name[5:-1], x) for x in data]
    if cls_name.startswith("dict("):
        inner = re.match(r"dict\(([^,]*), (.*)\)", cls_name).group(2)
        return {k: _validated(inner, v) for k, v in data.items()}
    if cls_name in ("str", "int", "bool", "float", "object", "ResourceQuantity"):
        return data
    cls = getattr(kserve, cls_name, None) or getattr(k8s, cls_name)
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    unknown = set(data) - set(by_json)
    assert not unknown, f"{cls_name}: unknown fields {sorted(unknown)}"
    return cls(**{by_json[k]: _validated(cls.openapi_types[by_json[k]], v) for k, v in data.items()})


def test_deploy_writes_an_inference_service_for_the_champion(tmp_path):
    out = tmp_path / "isvc.yaml"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "deploy",
            "--image",
            IMAGE,
            "--out",
            str(out),
            "--namespace",
            "team-a",
            "--accelerator-count",
            "1",
            "--max-replicas",
            "3",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    doc = yaml.safe_load(out.read_text())
    isvc = _validated("V1beta1InferenceService", doc)
    assert isinstance(isvc, kserve.V1beta1InferenceService)
    assert kserve.ApiClient().sanitize_for_serialization(isvc) == doc  # nothing lost or added on the way
    assert (doc["apiVersion"], doc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert doc["metadata"]["namespace"] == "team-a"
    predictor = isvc.spec.predictor
    (container,) = predictor.containers
    assert container.image == IMAGE and container.command == ["python", "-m", "cplvad.kserve_predictor"]
    assert "--model_uri=models:/cplvad@champion" in container.args
    assert container.env_from[0].secret_ref.name == "cplvad-credentials"  # MLFLOW_TRACKING_URI, credentials
    assert container.resources.limits["nvidia.com/gpu"] == "1" and predictor.max_replicas == 3
    assert container.security_context.run_as_non_root is True
    # the predictor the container runs parses these very arguments
    from cplvad.kserve_predictor import build_parser

    args, _ = build_parser().parse_known_args(container.args)
    assert (args.model_uri, args.model_name, args.http_port) == ("models:/cplvad@champion", "cplvad", 8080)

    moving = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "deploy",
            "--image",
            "ghcr.io/cplvad/cplvad:0.1.0",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert moving.returncode == 2 and "is not pinned" in moving.stderr
