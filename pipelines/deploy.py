"""``python -m pipelines deploy``: the KServe InferenceService that serves a registered model (default
``models:/cplvad@champion``) with the project image's custom predictor (``python -m
cplvad.kserve_predictor``, V2 inference protocol), written as YAML and, with ``--apply``, created or
updated on the cluster of the current kubeconfig through KServe's client.

The manifest is built from the ``kserve`` package's models (``V1beta1InferenceService``), so KServe's own
schema shapes it. The pods load the model from the MLflow registry at start: ``MLFLOW_TRACKING_URI``, its
credentials and the artifact store's (``AWS_*``) come from the credentials Secret (``--secret-name``), as in
the pipelines' pods.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cplvad.extras import require

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NAME = "cplvad"
DEFAULT_MODEL_URI = "models:/cplvad@champion"
DEFAULT_OUT = REPO / "pipelines" / "build" / "inference-service.yaml"
HTTP_PORT, GRPC_PORT = 8080, 8081
PREDICTOR = ["python", "-m", "cplvad.kserve_predictor"]
RUN_AS = 1000
"""The image's non-root user (Dockerfile)."""


def inference_service(
    *,
    name: str,
    image: str,
    model_uri: str,
    namespace: str | None = None,
    secret_name: str = "cplvad-credentials",
    service_account: str | None = None,
    min_replicas: int = 1,
    max_replicas: int = 1,
    accelerator_type: str = "nvidia.com/gpu",
    accelerator_count: int = 0,
    source_commit: str = "unknown",
) -> Any:
    """The InferenceService (a ``kserve.V1beta1InferenceService``): one predictor container running the
    project image's KServe predictor for ``model_uri``; ``accelerator_count`` GPUs per replica (0: CPU)."""
    kserve = require("kserve", "python -m pipelines deploy")
    from kubernetes import client as k8s

    from pipelines.common import RESOURCES, SOURCE_ANNOTATION

    r = RESOURCES["compute"]
    requests = {"cpu": r.cpu_request, "memory": r.memory_request}
    limits = {"cpu": r.cpu_limit, "memory": r.memory_limit}
    if accelerator_count:
        requests[accelerator_type] = limits[accelerator_type] = str(accelerator_count)
    container = k8s.V1Container(
        name="kserve-container",
        image=image,
        command=PREDICTOR,
        args=[
            f"--model_name={name}",
            f"--model_uri={model_uri}",
            f"--http_port={HTTP_PORT}",
            f"--grpc_port={GRPC_PORT}",
        ],
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=secret_name, optional=True))],
        ports=[k8s.V1ContainerPort(container_port=HTTP_PORT, protocol="TCP")],
        resources=k8s.V1ResourceRequirements(requests=requests, limits=limits),
        security_context=k8s.V1SecurityContext(
            run_as_non_root=True, run_as_user=RUN_AS, allow_privilege_escalation=False
        ),
    )
    predictor = kserve.V1beta1PredictorSpec(
        containers=[container],
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        service_account_name=service_account,
        tolerations=[k8s.V1Toleration(key=accelerator_type, operator="Exists", effect="NoSchedule")]
        if accelerator_count
        else None,
    )
    return kserve.V1beta1InferenceService(
        api_version=kserve.constants.KSERVE_V1BETA1,
        kind=kserve.constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=k8s.V1ObjectMeta(
            name=name,
            namespace=namespace,
            annotations={SOURCE_ANNOTATION: source_commit, "cplvad.io/model-uri": model_uri},
            labels={"app.kubernetes.io/name": "cplvad", "app.kubernetes.io/component": "predictor"},
        ),
        spec=kserve.V1beta1InferenceServiceSpec(predictor=predictor),
    )


def manifest(isvc: Any) -> dict[str, Any]:
    """The InferenceService as the plain mapping ``kubectl`` and KServe's client take."""
    import kserve

    return kserve.ApiClient().sanitize_for_serialization(isvc)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "deploy",
        help="write (and with --apply create or update) the KServe InferenceService of a registered model",
    )
    p.add_argument("--name", default=DEFAULT_NAME, help="InferenceService name (also the V2 model name)")
    p.add_argument("--namespace", default=None, help="namespace (default: the kubeconfig's)")
    p.add_argument(
        "--model-uri", dest="model_uri", default=DEFAULT_MODEL_URI, help="registry URI or model directory"
    )
    p.add_argument(
        "--image",
        default=None,
        help="project image by digest (NAME@sha256:...) or commit tag; default as for compile",
    )
    p.add_argument(
        "--secret-name",
        dest="secret_name",
        default="cplvad-credentials",
        help="Secret whose keys (MLFLOW_TRACKING_URI, MLFLOW_*, AWS_*) become the predictor's environment",
    )
    p.add_argument("--service-account", dest="service_account", default=None)
    p.add_argument("--min-replicas", dest="min_replicas", type=int, default=1)
    p.add_argument("--max-replicas", dest="max_replicas", type=int, default=1)
    p.add_argument("--accelerator-type", dest="accelerator_type", default="nvidia.com/gpu")
    p.add_argument(
        "--accelerator-count", dest="accelerator_count", type=int, default=0, help="GPUs per replica (0: CPU)"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the YAML goes")
    p.add_argument("--apply", action="store_true", help="create or update it on the cluster (kubeconfig)")


def cmd_deploy(args: argparse.Namespace) -> int:
    import yaml

    import components
    from cplvad.errors import ConfigError, ServiceError
    from cplvad.io import write_text
    from pipelines.common import SOURCE

    if args.image:
        components.set_image(args.image)
    image = components.current_image()
    components.check_pinned(image)
    if args.min_replicas < 0 or args.max_replicas < max(args.min_replicas, 1):
        raise ConfigError(
            f"--min-replicas {args.min_replicas} / --max-replicas {args.max_replicas}: need 0 <= min <= max, max >= 1"
        )
    isvc = inference_service(
        name=args.name,
        image=image,
        model_uri=args.model_uri,
        namespace=args.namespace,
        secret_name=args.secret_name,
        service_account=args.service_account,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        accelerator_type=args.accelerator_type,
        accelerator_count=args.accelerator_count,
        source_commit=SOURCE,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, yaml.safe_dump(manifest(isvc), sort_keys=False))
    print(f"wrote {args.out} (InferenceService {args.name}: {args.model_uri} on {image})")
    if not args.apply:
        return 0
    kserve = require("kserve", "python -m pipelines deploy --apply")
    try:
        client = kserve.KServeClient()
        try:
            client.get(args.name, namespace=args.namespace)
        except RuntimeError:  # KServe's client: not there yet
            client.create(isvc, namespace=args.namespace)
            action = "created"
        else:
            client.replace(args.name, isvc, namespace=args.namespace)
            action = "updated"
    except Exception as exc:  # the Kubernetes client raises its own and configuration errors
        raise ServiceError(
            f"could not apply InferenceService {args.name} with the current kubeconfig: {exc}"
        ) from None
    print(f"{action} InferenceService {args.name}")
    return 0
