"""What the training and ablation pipelines share: default parameters, resources, GPU requests,
credentials, and the sharded feature extraction (source -> shard plan -> ParallelFor extract -> merge)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp import dsl, kubernetes

import components as c
from cplvad.config import load_config

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ACCELERATOR_TYPE = "nvidia.com/gpu"
DEFAULT_SECRET = "cplvad-credentials"
SECRET_KEYS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
    "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_S3_ENDPOINT_URL",
)
"""Keys of the (optional) Kubernetes Secret ``secret_name`` exposed as environment variables of every task
(each key may be absent): S3 access for videos/features (boto3) and MLflow credentials."""
EXTRACTION_RETRIES = 3


def default_params(params_file: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``params`` pipeline argument: a params file (default: the repository's params.yaml) plus
    ``--set`` overrides, validated here so that a bad value fails before anything is submitted. Unset
    (None) values are left out: KFP parameters cannot hold null, and every such key defaults to None."""
    path = params_file if params_file is not None else REPO / "params.yaml"
    if params_file is None and not Path(path).is_file():
        path = None
    return load_config(path, overrides).model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


RESOURCES = {
    "gpu": Resources("4", "8", "16G", "32G"),      # extraction (decode workers + CLIP) and training
    "compute": Resources("2", "4", "8G", "16G"),   # pseudo labels, evaluation (small model, CPU is enough)
    "light": Resources("1", "2", "2G", "4G"),      # data preparation, shard plan, merge, registration, tables
}


def sized(task: dsl.PipelineTask, kind: str, secret_name: Any) -> dsl.PipelineTask:
    """CPU/memory requests and limits of ``kind``, plus the credentials Secret as environment variables."""
    r = RESOURCES[kind]
    task.set_cpu_request(r.cpu_request).set_cpu_limit(r.cpu_limit)
    task.set_memory_request(r.memory_request).set_memory_limit(r.memory_limit)
    kubernetes.use_secret_as_env(task, secret_name=secret_name, secret_key_to_env={k: k for k in SECRET_KEYS},
                                 optional=True)
    return task


def on_gpu(task: dsl.PipelineTask, accelerator_type: Any, accelerator_count: Any) -> dsl.PipelineTask:
    """Request ``accelerator_count`` accelerators of ``accelerator_type`` (pipeline parameters) and tolerate
    the usual GPU-node taint. The parameters are also registered as task inputs: KFP 2.17 does not do that
    for resource fields, and a task inside a ParallelFor would otherwise not see them."""
    task.set_accelerator_type(accelerator_type).set_accelerator_limit(accelerator_count)
    task.register_pipeline_channels([accelerator_type, accelerator_count])
    kubernetes.add_toleration(task, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
    return task


@dataclass
class Features:
    data: dsl.PipelineTask
    plan: dsl.PipelineTask
    extract: dsl.PipelineTask
    merge: dsl.PipelineTask

    @property
    def dataset(self) -> Any:
        return self.merge.outputs["dataset"]


def add_features(
    params: Any, source_uri: Any, features_uri: Any, num_shards: Any, accelerator_type: Any, accelerator_count: Any,
    secret_name: Any,
) -> Features:
    """Source -> shard plan -> ParallelFor over shards (one GPU extraction each, retried) -> merge."""
    data = sized(c.prepare_data(params=params, source_uri=source_uri), "light", secret_name)
    data.set_display_name("prepare data")
    plan = sized(c.plan_shards(data=data.outputs["data"], source_uri=source_uri, num_shards=num_shards), "light",
                 secret_name)
    plan.set_display_name("plan shards")
    with dsl.ParallelFor(plan.output, name="extract-shards") as shard:
        extract = c.extract_features(data=data.outputs["data"], params=params, source_uri=source_uri,
                                     features_uri=features_uri, shard=shard)
        on_gpu(sized(extract, "gpu", secret_name), accelerator_type, accelerator_count)
        extract.set_retry(num_retries=EXTRACTION_RETRIES, backoff_duration="60s", backoff_factor=2.0)
        extract.set_display_name("extract features (shard)")
    merge = sized(c.merge_features(data=data.outputs["data"], shards=dsl.Collected(extract.outputs["features"]),
                                   shard_plan=plan.output, features_uri=features_uri), "light", secret_name)
    merge.set_display_name("merge features")
    return Features(data, plan, extract, merge)
