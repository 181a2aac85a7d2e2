"""What the training and ablation pipelines share: default parameters and their split per step, resources,
GPU requests, credentials, the data volume, retries, the source commit on every pod, and the data step
(plan -> either the published features' dataset, or videos -> shard plan -> ParallelFor extract -> merge)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp import dsl, kubernetes

import components as c
from components.data import EXTRACT
from components.image import SOURCE_COMMIT, SOURCE_DIRTY
from cplvad.config import load_config
from cplvad.errors import ConfigError
from cplvad.tracking.pipeline_run import PIPELINE_RUN_ENV
from cplvad.tracking.runs import SOURCE_COMMIT_ENV

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ACCELERATOR_TYPE = "nvidia.com/gpu"
DEFAULT_SECRET = "cplvad-credentials"
SECRET_KEYS = (
    "MLFLOW_TRACKING_URI",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_S3_ENDPOINT_URL",
)
"""Keys of the (optional) Kubernetes Secret ``secret_name`` exposed as environment variables of every task
(each key may be absent): the MLflow server and its credentials, S3 access for videos and features
(``cplvad.storage``)."""
EXTRACTION_RETRIES = 3
TRAINING_RETRIES = 2
"""A failed training pod is retried after 2 and 4 minutes; it resumes from the checkpoint kept under
``checkpoint_uri`` (see ``cplvad.train.checkpoint_mirror``)."""
MAX_PARALLEL_SHARDS = 4
"""Extraction shards running at once (GPU pods); ``--max-parallel-shards`` of compile/run-local/submit.
KFP fixes a ParallelFor's parallelism when the pipeline is compiled, so it is not a run parameter."""
WORKFLOW_NAME = "metadata.labels['workflows.argoproj.io/workflow']"
"""The pod field that names the pipeline run on Kubeflow Pipelines' Argo backend: the tracked steps get it
as ``$CPLVAD_PIPELINE_RUN`` and so find the same MLflow parent run."""
TRACKING_KEYS = ("tracking.experiment", "tracking.artifact_location", "tracking.registered_model")
"""What the MLflow steps read of ``tracking``; never the tracking URI, which reaches the pods through their
environment (``MLFLOW_TRACKING_URI``: the credentials Secret, or ``--tracking-uri``, see ``TRACKING_URI``)."""
SCORING_KEYS = ("eval.level_fusion", "eval.level_upsampling")
"""How a model combines its levels when scoring: training uses it for validation and calibration, and the
model directory keeps it for ``cplvad predict``."""
TRAINING_KEYS = ("seed", "clip", "model", "train", "predict.false_alarm_rate", *SCORING_KEYS)
RESULT_KEYS = (
    "seed",
    "demo",
    "data",
    "clip",
    "extract",
    "model",
    "train",
    "car",
    "stage2",
    "eval",
    "predict.false_alarm_rate",
)
"""Everything the steps of the training and ablation pipelines read: the parameters the MLflow parent run
records."""
STEP_KEYS: dict[str, tuple[str, ...]] = {
    "prepare_data": ("demo", "data"),
    "extract": ("clip", "extract"),
    "train_stage1": TRAINING_KEYS,
    "pseudo_labels": ("car",),
    "train_stage2": (*TRAINING_KEYS, "stage2"),
    "evaluate": ("eval",),
    "data": ("data",),
    "open_run": (*RESULT_KEYS, *TRACKING_KEYS),
    "register": TRACKING_KEYS,
    "ablation_table": (*RESULT_KEYS, *TRACKING_KEYS),
    "scoring": ("extract", "predict", *TRACKING_KEYS),
}
"""The params keys each step reads (``split_params``), so its cache key changes only with them (``data``:
the data plan and the published features' dataset; ``scoring``: both steps of the scoring pipeline). No
step receives the whole ``params``, none the tracking URI. Pseudo labels and evaluation run on CPU pods,
so they do not take ``train.device``: "auto" is right there."""
TRACKING_URI: str | None = None
"""``--tracking-uri`` of compile/submit/run-local: set as ``MLFLOW_TRACKING_URI`` on every task when
traced (an environment variable is no part of a step's cache key); None: the Secret's, or the pod's."""
MAX_PARALLEL_ROWS = 2
"""Ablation rows (stage-2 trainings, GPU pods) running at once per grid loop; ``--max-parallel-rows``."""
DATA_VOLUME: tuple[str, str] | None = None
"""``(claim, mount path)``: a PersistentVolumeClaim mounted on every task (``--data-volume CLAIM:PATH``), so
that data given by path (a published feature release, a manifest, video lists) is there in every pod."""
SOURCE = f"{SOURCE_COMMIT or 'unknown'}{'-dirty' if SOURCE_DIRTY else ''}"
"""The commit the pipeline is compiled from, as written on every pod (``-dirty``: with local changes)."""
SOURCE_ANNOTATION = "cplvad.io/source-commit"


def pipeline_params(
    params_file: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[dict[str, Any], str]:
    """The ``params`` pipeline argument and the configured ``tracking.tracking_uri``, which is left out of
    it: a pipeline's pods take the tracking server from their environment, so that it is in no step's
    cache key (``TRACKING_URI``). From a params file (default: the repository's params.yaml) plus ``--set``
    overrides, validated here so that a bad value fails before anything is submitted. Unset (None) values
    are left out: KFP parameters cannot hold null, and every such key defaults to None."""
    path = params_file if params_file is not None else REPO / "params.yaml"
    if params_file is None and not Path(path).is_file():
        path = None
    params = load_config(path, overrides).model_dump(mode="json", exclude_none=True)
    return params, params["tracking"].pop("tracking_uri")


def default_params(
    params_file: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """The ``params`` pipeline argument (``pipeline_params``, without the tracking URI)."""
    return pipeline_params(params_file, overrides)[0]


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


RESOURCES = {
    "gpu": Resources("4", "8", "16G", "32G"),  # extraction (decode workers + CLIP) and training
    "compute": Resources("2", "4", "8G", "16G"),  # pseudo labels, evaluation (small model, CPU is enough)
    "light": Resources("1", "2", "2G", "4G"),  # data preparation, shard plan, merge, registration, tables
}


def set_max_parallel_shards(count: int) -> None:
    """Cap the extraction fan-out of pipelines traced from now on (``pipelines.build``)."""
    global MAX_PARALLEL_SHARDS
    if count < 1:
        raise ValueError(f"max_parallel_shards must be >= 1, got {count}")
    MAX_PARALLEL_SHARDS = count


def set_max_parallel_rows(count: int) -> None:
    """Cap the ablation's stage-2 fan-out of pipelines traced from now on."""
    global MAX_PARALLEL_ROWS
    if count < 1:
        raise ValueError(f"max_parallel_rows must be >= 1, got {count}")
    MAX_PARALLEL_ROWS = count


def set_tracking_uri(uri: str | None) -> None:
    """``MLFLOW_TRACKING_URI`` of every task of pipelines traced from now on (None: from the Secret)."""
    global TRACKING_URI
    TRACKING_URI = uri or None


def set_data_volume(spec: str | None) -> None:
    """Mount ``CLAIM:PATH`` on every task of pipelines traced from now on (None: no volume)."""
    global DATA_VOLUME
    if spec is None:
        DATA_VOLUME = None
        return
    claim, _, path = spec.partition(":")
    if not claim or not path.startswith("/"):
        raise ConfigError(
            f"--data-volume {spec!r}: give CLAIM:PATH, a PersistentVolumeClaim and an absolute mount "
            "path (e.g. ucf-features:/data)"
        )
    DATA_VOLUME = (claim, path)


def described(text: str) -> str:
    """A pipeline description that says which commit it was compiled from."""
    return f"{text} Compiled from git commit {SOURCE}."


def sized(task: dsl.PipelineTask, kind: str, secret_name: Any) -> dsl.PipelineTask:
    """CPU/memory requests and limits of ``kind``, the credentials Secret as environment variables (and the
    tracking URI, ``TRACKING_URI``), the data volume (``DATA_VOLUME``), and the source commit (pod
    annotation ``cplvad.io/source-commit`` and ``$CPLVAD_SOURCE_COMMIT`` for MLflow)."""
    r = RESOURCES[kind]
    task.set_cpu_request(r.cpu_request).set_cpu_limit(r.cpu_limit)
    task.set_memory_request(r.memory_request).set_memory_limit(r.memory_limit)
    keys = [k for k in SECRET_KEYS if not (TRACKING_URI and k == "MLFLOW_TRACKING_URI")]
    kubernetes.use_secret_as_env(
        task, secret_name=secret_name, secret_key_to_env={k: k for k in keys}, optional=True
    )
    if TRACKING_URI:
        task.set_env_variable("MLFLOW_TRACKING_URI", TRACKING_URI)
    kubernetes.add_pod_annotation(task, SOURCE_ANNOTATION, SOURCE)
    # read back through the downward API: a pod-level setting, and no container-spec setter (KFP inspects the
    # whole call stack in each of those, which makes tracing at import slow)
    kubernetes.use_field_path_as_env(
        task, env_name=SOURCE_COMMIT_ENV, field_path=f"metadata.annotations['{SOURCE_ANNOTATION}']"
    )
    if DATA_VOLUME is not None:
        kubernetes.mount_pvc(task, pvc_name=DATA_VOLUME[0], mount_path=DATA_VOLUME[1])
    return task


def tracked(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Let the step find the pipeline's MLflow parent run: ``$CPLVAD_PIPELINE_RUN`` = the run's workflow name."""
    kubernetes.use_field_path_as_env(task, env_name=PIPELINE_RUN_ENV, field_path=WORKFLOW_NAME)
    return task


def retried_training(task: dsl.PipelineTask) -> dsl.PipelineTask:
    task.set_retry(num_retries=TRAINING_RETRIES, backoff_duration="120s", backoff_factor=2.0)
    return task


def on_gpu(task: dsl.PipelineTask, accelerator_type: Any, accelerator_count: Any) -> dsl.PipelineTask:
    """Request ``accelerator_count`` accelerators of ``accelerator_type`` (pipeline parameters) and tolerate
    the usual GPU-node taint. The parameters are also registered as task inputs: KFP 2.17 does not do that
    for resource fields, and a task inside a ParallelFor would otherwise not see them."""
    task.set_accelerator_type(accelerator_type).set_accelerator_limit(accelerator_count)
    task.register_pipeline_channels([accelerator_type, accelerator_count])
    kubernetes.add_toleration(task, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
    return task


def gpu_training(
    task: dsl.PipelineTask, name: str, secret_name: Any, accelerator_type: Any, accelerator_count: Any
) -> dsl.PipelineTask:
    """A training task as every pipeline runs it: a GPU pod (``on_gpu``), retried after a lost pod (it resumes
    from its checkpoint), shown as ``name``."""
    retried_training(on_gpu(sized(task, "gpu", secret_name), accelerator_type, accelerator_count))
    task.set_display_name(name)
    return task


def evaluation(
    dataset: Any, model: Any, params: Any, label: Any, name: str, secret_name: Any
) -> dsl.PipelineTask:
    """The evaluation of ``model`` on ``dataset`` (a row ``label`` of the results), on a compute pod, shown as
    ``name``."""
    task = sized(c.evaluate(dataset=dataset, model=model, params=params, label=label), "compute", secret_name)
    task.set_display_name(name)
    return task


def split(params: Any, secret_name: Any) -> dsl.PipelineTask:
    """The step that validates ``params`` and hands each step its keys (``STEP_KEYS``): outputs by step name."""
    task = sized(
        c.split_params(params=params, steps={k: list(v) for k, v in STEP_KEYS.items()}), "light", secret_name
    )
    task.set_display_name("split parameters")
    return task


@dataclass
class Features:
    plan: dsl.PipelineTask
    data: dsl.PipelineTask
    shards: dsl.PipelineTask
    extract: dsl.PipelineTask
    merge: dsl.PipelineTask
    resolved: dsl.PipelineTask
    dataset: Any
    """The merged extraction or the published features' dataset, whichever branch ran."""


def add_features(
    step_params: dsl.PipelineTask,
    source_uri: Any,
    features_uri: Any,
    num_shards: Any,
    accelerator_type: Any,
    accelerator_count: Any,
    secret_name: Any,
) -> Features:
    """Plan the data (``step_params``: the ``split`` task), then one of two branches: videos -> shard plan ->
    ParallelFor over shards (one GPU extraction each, at most ``MAX_PARALLEL_SHARDS`` at once, retried) ->
    merge; or the dataset of features that are already there (a built-in benchmark), nothing extracted."""
    plan = sized(c.plan_data(params=step_params.outputs["data"], source_uri=source_uri), "light", secret_name)
    plan.set_display_name("plan data")
    with dsl.If(plan.output == EXTRACT, name="extract-videos"):
        data = sized(
            c.prepare_data(params=step_params.outputs["prepare_data"], source_uri=source_uri),
            "light",
            secret_name,
        )
        data.set_display_name("prepare data")
        # the shard jobs carry the extraction's params and the videos into the loop: KFP's local runner replaces
        # every other task output that enters a ParallelFor with the loop item
        shards = sized(
            c.plan_shards(
                data=data.outputs["data"],
                videos=data.outputs["Output"],
                num_shards=num_shards,
                params=step_params.outputs["extract"],
            ),
            "light",
            secret_name,
        )
        shards.set_display_name("plan shards")
        with dsl.ParallelFor(shards.output, name="extract-shards", parallelism=MAX_PARALLEL_SHARDS) as job:
            extract = c.extract_features(
                data=data.outputs["data"],
                params=job.params,
                videos=job.videos,
                features_uri=features_uri,
                shard=job.shard,
            )
            on_gpu(sized(extract, "gpu", secret_name), accelerator_type, accelerator_count)
            extract.set_retry(num_retries=EXTRACTION_RETRIES, backoff_duration="60s", backoff_factor=2.0)
            extract.set_display_name("extract features (shard)")
        merge = sized(
            c.merge_features(
                data=data.outputs["data"],
                shards=dsl.Collected(extract.outputs["features"]),
                shard_plan=shards.output,
                features_uri=features_uri,
            ),
            "light",
            secret_name,
        )
        merge.set_display_name("merge features")
    with dsl.Else(name="published-features"):
        resolved = sized(c.resolve_data(params=step_params.outputs["data"]), "light", secret_name)
        resolved.set_display_name("dataset of the published features")
    dataset = dsl.OneOf(merge.outputs["dataset"], resolved.outputs["dataset"])
    return Features(plan, data, shards, extract, merge, resolved, dataset)
