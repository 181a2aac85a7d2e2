"""The training pipeline, end to end: videos -> sharded features -> stage 1 -> pseudo labels -> stage 2 ->
evaluation -> MLflow run + registered ``candidate`` model (the DVC graph of dvc.yaml, on a cluster)."""

from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Metrics, Model

import components as c
from pipelines.common import (
    DEFAULT_ACCELERATOR_TYPE,
    DEFAULT_SECRET,
    add_features,
    default_params,
    on_gpu,
    sized,
)

NAME = "cplvad-training"
DEFAULT_PARAMS = default_params()


class Outputs(NamedTuple):
    model: Model
    metrics: Metrics
    report: HTML


def training(
    params: dict = DEFAULT_PARAMS,
    source_uri: str = "",
    features_uri: str = "",
    num_shards: int = 4,
    accelerator_type: str = DEFAULT_ACCELERATOR_TYPE,
    accelerator_count: int = 1,
    tracking_uri: str = "",
    secret_name: str = DEFAULT_SECRET,
) -> Outputs:
    """Parameters:

    params: every hyperparameter (the params.yaml mapping; default: the repository's params.yaml at compile time).
    source_uri: folder or s3:// prefix with train_videos.csv, test_videos.csv, dataset.yaml (empty: demo videos).
    features_uri: optional s3:// prefix the shards extract into (resumable, shared); empty: KFP artifacts.
    num_shards: extraction fan-out (at most one shard per video).
    accelerator_type / accelerator_count: GPU request of extraction and training (e.g. nvidia.com/gpu, 1).
    tracking_uri: MLflow tracking URI (empty: MLFLOW_TRACKING_URI of the pod, else params.tracking).
    secret_name: Kubernetes Secret whose AWS_* / MLFLOW_* keys become environment variables (optional).
    """
    feats = add_features(params, source_uri, features_uri, num_shards, accelerator_type, accelerator_count, secret_name)
    dataset = feats.dataset

    stage1 = on_gpu(sized(c.train_stage1(dataset=dataset, params=params), "gpu", secret_name),
                    accelerator_type, accelerator_count)
    stage1.set_display_name("train stage 1")
    pseudo = sized(c.pseudo_labels(dataset=dataset, stage1=stage1.outputs["model"], params=params), "compute",
                   secret_name)
    pseudo.set_display_name("pseudo labels (CAR)")
    stage2 = on_gpu(sized(c.train_stage2(dataset=dataset, pseudo=pseudo.outputs["pseudo"], params=params), "gpu",
                          secret_name), accelerator_type, accelerator_count)
    stage2.set_display_name("train stage 2")
    evaluation = sized(c.evaluate(dataset=dataset, model=stage2.outputs["model"], params=params,
                                  label="CPL-VAD (stage 2)"), "compute", secret_name)
    evaluation.set_display_name("evaluate")
    registration = sized(c.register(dataset=dataset, stage1=stage1.outputs["model"], pseudo=pseudo.outputs["pseudo"],
                                    stage2=stage2.outputs["model"], evaluation=evaluation.outputs["evaluation"],
                                    params=params, tracking_uri=tracking_uri), "light", secret_name)
    registration.set_display_name("register (MLflow)")
    registration.set_caching_options(False)  # a side effect: every run is logged and registered
    return Outputs(stage2.outputs["model"], evaluation.outputs["metrics"], evaluation.outputs["report"])


DESCRIPTION = ("CPL-VAD: raw videos to a registered anomaly detector (features, stage 1, pseudo labels, "
               "stage 2, evaluation, MLflow registration).")


def build() -> Any:
    """The pipeline, traced now: tasks take the components' image at this moment (see ``components.set_image``)."""
    return dsl.pipeline(name=NAME, description=DESCRIPTION)(training)


training_pipeline = build()
