"""``python -m pipelines compile | run-local | submit | deploy`` (run from the repository root)."""

from __future__ import annotations

import argparse
import os
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any

from pipelines import deploy

REPO = Path(__file__).resolve().parents[1]
TINY_PARAMS = REPO / "configs" / "tiny.yaml"
"""``run-local --tiny``: seconds-sized settings (tiny random CLIP and model, a dozen demo videos)."""


def _params(args: argparse.Namespace) -> dict[str, Any]:
    """The ``params`` argument; a ``tracking.tracking_uri`` set there (not the default) stands for
    ``--tracking-uri`` when that is not given: the pods get it through their environment."""
    from cplvad.config import TrackingConfig
    from pipelines.common import pipeline_params

    _no_credentials({"tracking_uri": args.tracking_uri})  # set in every pod's spec
    if getattr(args, "tiny", False):
        if args.params is not None:
            raise SystemExit("--tiny is --params configs/tiny.yaml: give one or the other")
        params, uri = pipeline_params(TINY_PARAMS, args.set)
    else:
        params, uri = pipeline_params(args.params, args.set)
    _no_credentials({**params, "tracking": {**params["tracking"], "tracking_uri": uri}}, "params")
    if args.tracking_uri is None and uri != TrackingConfig().tracking_uri:
        args.tracking_uri = uri
    return params


def _no_credentials(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``values``, refused when one holds a credential (a URI's user info or secret query parameter): a
    pipeline's arguments are written into its YAML, the cluster's run record and every pod's spec."""
    from cplvad.errors import ConfigError
    from cplvad.redact import has_credentials, strip_credentials
    from pipelines.common import DEFAULT_SECRET

    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else f"--{key.replace('_', '-')}"
        if isinstance(value, dict):
            _no_credentials(value, name)
        elif isinstance(value, str) and has_credentials(value):
            raise ConfigError(
                f"{name} holds a credential, which would be written into the pipeline (its YAML, the run's "
                f"arguments, every pod's spec): give {strip_credentials(value)!r} and the credentials as a "
                f"Kubernetes Secret that every pod gets as environment variables, e.g. `kubectl create secret "
                f"generic {DEFAULT_SECRET} --from-literal=MLFLOW_TRACKING_USERNAME=... "
                "--from-literal=MLFLOW_TRACKING_PASSWORD=...` (or MLFLOW_TRACKING_TOKEN; AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY for S3), named by --secret-name / the secret_name parameter "
                f"(default {DEFAULT_SECRET}); for run-local, export those variables here"
            )
    return values


def _pod_paths(params: dict[str, Any]) -> dict[str, Any]:
    """``params``, refused when a ``data`` path is relative: a cluster's pods read each path as it is given
    (on a volume mounted in every pod, ``--data-volume``), not where this command runs."""
    from cplvad.config import dataset_kind
    from cplvad.errors import ConfigError
    from cplvad.storage.location import is_url

    _pod_feedback(params.get("data", {}))
    for key, value in params.get("data", {}).items():
        if key == "dataset" and dataset_kind(value) != "manifest":
            continue
        if key.startswith("feedback"):  # no path (feedback_repeat) or settled by _pod_feedback
            continue
        if not is_url(value) and not Path(value).is_absolute():
            raise ConfigError(
                f"data.{key}={value}: the pods read this path as it is given; give it absolute, as "
                "the pods see it (a volume mounted in every pod: --data-volume CLAIM:PATH)"
            )
    return params


def _pod_feedback(data: dict[str, Any]) -> None:
    """``data.feedback`` as the pods can read it, in place. A folder on the data volume (an absolute path) is
    read by the training and evaluation steps as the DVC stages read it. A relative path names a folder of
    this checkout (``params.yaml``'s ``feedback``), which no pod has: it is left out of the pipeline, with a
    note when the folder holds samples, rather than failing every training step."""
    from cplvad.feedback.folder import read_record

    folder = data.get("feedback")  # never a URL: the config refuses one
    if folder is None or Path(folder).is_absolute():
        return
    del data["feedback"]
    record = read_record(folder) if Path(folder).is_dir() else None
    if record is not None and record.samples:
        print(
            f"note: data.feedback={folder} ({len(record.samples)} samples) is a folder of this checkout, which "
            "the pods do not have: the pipeline trains without it. To train on it, copy it onto the data "
            "volume and give its absolute path (--set data.feedback=/data/feedback)",
            file=sys.stderr,
        )


def _arguments(args: argparse.Namespace, pipeline: str) -> dict[str, Any]:
    """Pipeline arguments from the command line (only those given, besides ``params``); a training
    ``source_uri`` that contradicts the ``data`` section stops here, before anything runs or is submitted."""
    from cplvad.config import DataConfig
    from cplvad.extract.dataset_folder import check_source

    values: dict[str, Any] = {"params": _params(args)}
    for key in (
        "source_uri",
        "features_uri",
        "num_shards",
        "accelerator_type",
        "accelerator_count",
        "secret_name",
        "checkpoint_uri",
        "model_uri",
        "out_uri",
    ):
        value = getattr(args, key, None)
        if value is not None:
            values[key] = value
    if pipeline != "scoring":  # scoring's source is the footage to score, not training data
        check_source(DataConfig(**values["params"]["data"]), values.get("source_uri", ""))
    if (
        values.get("features_uri") and "checkpoint_uri" not in values
    ):  # a durable place is at hand: resume there
        values["checkpoint_uri"] = values["features_uri"].rstrip("/") + "/checkpoints"
    if pipeline == "ablation" and getattr(args, "no_track", False):
        values["track"] = False
    return _no_credentials(values)


def _common(p: argparse.ArgumentParser, *, pipelines_multi: bool = False) -> None:
    if pipelines_multi:
        p.add_argument("--pipeline", choices=["training", "ablation", "scoring", "all"], default="all")
    else:
        p.add_argument("--pipeline", choices=["training", "ablation", "scoring"], default="training")
    p.add_argument(
        "--params",
        type=Path,
        default=None,
        help="params file (default: params.yaml of the repository; configs/paper-ucf.yaml or "
        "configs/paper-xd.yaml for the benchmarks)",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override (repeatable)"
    )
    p.add_argument(
        "--image",
        default=None,
        help="component image, by digest (NAME@sha256:...) or commit tag (NAME:sha-<commit>); default: "
        "$CPLVAD_IMAGE or ghcr.io/cplvad/cplvad:sha-<this checkout's commit>",
    )
    p.add_argument(
        "--max-parallel-shards",
        dest="max_parallel_shards",
        type=int,
        default=None,
        help="extraction shards (GPU pods) running at once (default 4)",
    )
    p.add_argument(
        "--max-parallel-rows",
        dest="max_parallel_rows",
        type=int,
        default=None,
        help="ablation: stage-2 trainings (GPU pods) of a grid loop running at once (default 2)",
    )
    p.add_argument(
        "--tracking-uri",
        dest="tracking_uri",
        default=None,
        help="MLflow tracking URI, set as MLFLOW_TRACKING_URI on every pod (not a step input, so it is no "
        "part of any cache key); default: the key MLFLOW_TRACKING_URI of the credentials Secret",
    )
    p.add_argument(
        "--data-volume",
        dest="data_volume",
        default=None,
        metavar="CLAIM:PATH",
        help="PersistentVolumeClaim mounted at PATH in every pod, for data given by path (e.g. "
        "--set data.features_root=PATH/UCFClipFeatures)",
    )


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source-uri",
        dest="source_uri",
        default=None,
        help="folder or s3:// prefix with train_videos.csv, test_videos.csv, dataset.yaml, instead of the "
        "demo videos (with data.dataset=demo; other data: the data section, --set data.dataset=...)",
    )
    p.add_argument(
        "--features-uri", dest="features_uri", default=None, help="s3:// prefix the shards extract into"
    )
    p.add_argument(
        "--shards", dest="num_shards", type=int, default=None, help="extraction shards (default 4)"
    )
    p.add_argument(
        "--checkpoint-uri",
        dest="checkpoint_uri",
        default=None,
        help="s3:// prefix keeping training checkpoints across pod restarts (default: "
        "<features-uri>/checkpoints when --features-uri is given)",
    )
    p.add_argument("--no-track", action="store_true", help="ablation: do not log to MLflow")
    p.add_argument(
        "--model-uri",
        dest="model_uri",
        default=None,
        help="scoring: the model (default models:/cplvad@champion; or a model directory)",
    )
    p.add_argument(
        "--out-uri",
        dest="out_uri",
        default=None,
        help="scoring: s3:// prefix or folder for the results (resumable; default: the pipeline's artifacts)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure (also CPLVAD_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compile", help="write the pipeline YAML (IR) for a cluster")
    _common(p, pipelines_multi=True)
    p.add_argument(
        "--out",
        type=Path,
        default=REPO / "pipelines" / "build",
        help="output folder (default pipelines/build)",
    )

    p = sub.add_parser(
        "run-local", help="run a pipeline here with KFP's local SubprocessRunner (no Docker, no cluster)"
    )
    _common(p)
    _run_arguments(p)
    p.add_argument(
        "--tiny", action="store_true", help="seconds-sized settings for a smoke run (tiny CLIP and model)"
    )
    p.add_argument("--out", type=Path, default=REPO / "outputs" / "kfp-local", help="local pipeline root")

    deploy.add_parser(sub)

    p = sub.add_parser("submit", help="submit a run to a Kubeflow Pipelines cluster (kfp.Client)")
    _common(p)
    _run_arguments(p)
    p.add_argument(
        "--host",
        default=os.environ.get("KF_PIPELINES_ENDPOINT"),
        help="KFP API endpoint, e.g. https://kubeflow.example.com/pipeline ($KF_PIPELINES_ENDPOINT); "
        "omit inside the cluster",
    )
    p.add_argument("--namespace", default=None, help="profile namespace (multi-user Kubeflow)")
    p.add_argument("--experiment", default="cplvad", help="KFP experiment name")
    p.add_argument("--run-name", default=None)
    p.add_argument(
        "--pipeline-root", default=None, help="artifact root, e.g. s3://bucket/kfp (default: the cluster's)"
    )
    p.add_argument("--service-account", default=None, help="Kubernetes service account of the pods")
    p.add_argument("--accelerator-type", dest="accelerator_type", default=None, help="e.g. nvidia.com/gpu")
    p.add_argument(
        "--accelerator-count",
        dest="accelerator_count",
        type=int,
        default=None,
        help="accelerators per extraction/training task (0 = CPU nodes)",
    )
    p.add_argument(
        "--secret-name",
        dest="secret_name",
        default=None,
        help="Kubernetes Secret with AWS_*/MLFLOW_* keys for every task (default cplvad-credentials)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("KF_PIPELINES_TOKEN"),
        help="bearer token ($KF_PIPELINES_TOKEN), e.g. from `kubectl create token`",
    )
    p.add_argument(
        "--cookies",
        default=os.environ.get("KF_PIPELINES_COOKIES"),
        help="session cookie(s) of a Dex/oauth2-proxy login ($KF_PIPELINES_COOKIES), "
        "e.g. 'authservice_session=...'",
    )
    p.add_argument("--ssl-ca-cert", default=None, help="CA bundle of the endpoint")
    p.add_argument("--no-cache", action="store_true", help="disable KFP caching for this run")
    p.add_argument("--wait", action="store_true", help="wait for the run; exit 1 unless it succeeds")
    p.add_argument("--timeout", type=int, default=6 * 3600, help="seconds to --wait (default 6 h)")
    return parser


def _pipeline(args: argparse.Namespace, name: str, *, pinned: bool = True) -> Any:
    """Pipeline ``name``, traced again with ``--image`` / ``--max-parallel-shards`` / ``--max-parallel-rows`` /
    ``--tracking-uri`` / ``--data-volume`` when given (tasks copy them when traced). ``pinned``: refuse an
    image reference that can move (a cluster will pull it)."""
    import components
    from pipelines import build, common, pipeline

    if args.image:
        components.set_image(args.image)
    if pinned:
        components.check_pinned(components.current_image())
    if args.max_parallel_shards is not None:
        common.set_max_parallel_shards(args.max_parallel_shards)
    if args.max_parallel_rows is not None:
        common.set_max_parallel_rows(args.max_parallel_rows)
    common.set_tracking_uri(args.tracking_uri)
    common.set_data_volume(args.data_volume)
    retrace = (
        args.image
        or args.max_parallel_shards is not None
        or args.max_parallel_rows is not None
        or args.tracking_uri
        or args.data_volume
    )
    return build(name) if retrace else pipeline(name)


def cmd_compile(args: argparse.Namespace) -> int:
    from kfp import compiler

    import components
    from components.image import SOURCE_DIRTY
    from cplvad.storage.atomic import atomic_path
    from cplvad.storage.ownership import claim_file
    from pipelines import NAMES
    from pipelines.common import SOURCE

    names = list(NAMES) if args.pipeline == "all" else [args.pipeline]
    params = _pod_paths(_params(args))
    for name in names:
        path = args.out / f"{name}.yaml"
        with claim_file(path, "--out"), atomic_path(path, suffix=".yaml") as tmp:  # never a file of yours
            compiler.Compiler().compile(
                _pipeline(args, name), str(tmp), pipeline_parameters={"params": params}
            )
        print(f"wrote {path}")
    print(f"image: {components.current_image()}")
    print(f"source commit: {SOURCE}")
    if SOURCE_DIRTY:
        print(
            "warning: this checkout has uncommitted changes in components/ or src/: the pods run the image's "
            "library, which does not have them",
            file=sys.stderr,
        )
    return 0


def cmd_run_local(args: argparse.Namespace) -> int:
    from kfp import local
    from kfp.dsl import ClassificationMetrics, Metrics

    from cplvad.config import TrackingConfig
    from cplvad.redact import redact
    from cplvad.tracking.pipeline_run import PIPELINE_RUN_ENV
    from pipelines.local_runner import allow_artifact_oneof

    arguments = _arguments(args, args.pipeline)
    arguments.setdefault("num_shards", 2)
    root = args.out.resolve()
    root.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", message=".*non-Python base image.*")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    allow_artifact_oneof()  # the data step's two branches meet in a dsl.OneOf
    if (
        args.pipeline == "training"
    ):  # what a cluster gives its tracked pods (the workflow name); inherited here
        os.environ.setdefault(PIPELINE_RUN_ENV, f"local-{uuid.uuid4().hex[:12]}")
    if args.tracking_uri:  # the local runner's steps are subprocesses of this one: they inherit it
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    task = _pipeline(args, args.pipeline, pinned=False)(**arguments)
    print(f"\n{args.pipeline} pipeline finished; artifacts under {root}")
    for name, artifact in task.outputs.items():
        print(f"  {name}: {artifact.path}")
        if isinstance(artifact, Metrics):
            for key, value in artifact.metadata.items():
                print(f"    {key} = {value:.2f}")
        if isinstance(artifact, ClassificationMetrics):
            roc = artifact.metadata.get("confidenceMetrics", [])
            matrix = artifact.metadata.get("confusionMatrix", {})
            rows = [[int(n) for n in r["row"]] for r in matrix.get("rows", [])]  # frame counts
            print(
                f"    ROC: {len(roc)} points; confusion matrix (normal, anomalous frames) at threshold "
                f"{artifact.metadata.get('threshold')}: {rows}"
            )
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or TrackingConfig().tracking_uri
    print(f"MLflow: {redact(tracking)} (experiment {arguments['params']['tracking']['experiment']})")
    return 0


def make_client(args: argparse.Namespace) -> Any:
    """kfp.Client with the authentication given: a bearer token (``--token``), session cookies
    (``--cookies``), or, with neither, KFP's default: the service-account token at
    ``$KF_PIPELINES_SA_TOKEN_PATH`` (in-cluster, e.g. a Kubeflow notebook) when it exists."""
    import kfp

    return kfp.Client(
        host=args.host,
        namespace=args.namespace or "kubeflow",
        existing_token=args.token,
        cookies=args.cookies,
        ssl_ca_cert=args.ssl_ca_cert,
    )


def cmd_submit(args: argparse.Namespace) -> int:
    arguments = _arguments(args, args.pipeline)
    _pod_paths(arguments["params"])
    if not args.tracking_uri:
        print(
            "warning: no --tracking-uri (nor tracking.tracking_uri): unless the credentials Secret holds "
            "MLFLOW_TRACKING_URI, the MLflow run is written to a SQLite file inside a pod and lost",
            file=sys.stderr,
        )
    pipeline = _pipeline(args, args.pipeline)
    client = make_client(args)
    result = client.create_run_from_pipeline_func(
        pipeline,
        arguments=arguments,
        run_name=args.run_name,
        experiment_name=args.experiment,
        namespace=args.namespace,
        pipeline_root=args.pipeline_root,
        service_account=args.service_account,
        enable_caching=False if args.no_cache else None,
    )
    print(f"submitted run {result.run_id} of {args.pipeline} (experiment {args.experiment})")
    if not args.wait:
        return 0
    run = client.wait_for_run_completion(result.run_id, timeout=args.timeout)
    state = str(getattr(run, "state", "UNKNOWN"))
    print(f"run {result.run_id} finished: {state}")
    return 0 if state.upper().endswith("SUCCEEDED") else 1


def main(argv: list[str] | None = None) -> int:
    """Run a command inside cplvad's error boundary: a failure is one line (the traceback with ``--debug`` or
    ``CPLVAD_DEBUG=1``), exit status 2 (3 for a bug), credentials masked in everything printed."""
    from cplvad.cli.boundary import debug_requested, report
    from cplvad.redact import redacted_output

    args = build_parser().parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    with redacted_output():
        try:
            commands = {
                "compile": cmd_compile,
                "run-local": cmd_run_local,
                "submit": cmd_submit,
                "deploy": deploy.cmd_deploy,
            }
            return commands[args.command](args)
        except (Exception, KeyboardInterrupt) as exc:
            return report(
                exc, debug=debug_requested(args.debug), write=lambda text: print(text, file=sys.stderr)
            )
