"""The training pipeline, end to end: videos -> sharded features (or published features) -> stage 1 -> pseudo
labels -> stage 2 -> evaluation -> MLflow run + registered ``candidate`` model (the DVC graph of dvc.yaml, on a
cluster).

The MLflow parent run is opened first (``open_run``); training, pseudo labels and evaluation log into it
while they run, and ``register`` closes it."""

from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Metrics, Model

import components as c
from pipelines.common import (
    DEFAULT_ACCELERATOR_TYPE,
    DEFAULT_SECRET,
    add_features,
    default_params,
    described,
    evaluation,
    gpu_training,
    sized,
    split,
    tracked,
)

NAME = "cplvad-training"
DEFAULT_PARAMS = default_params()


class Outputs(NamedTuple):
    model: Model
    metrics: Metrics
    classification: ClassificationMetrics
    report: HTML


def training(
    params: dict = DEFAULT_PARAMS,
    source_uri: str = "",
    features_uri: str = "",
    num_shards: int = 4,
    accelerator_type: str = DEFAULT_ACCELERATOR_TYPE,
    accelerator_count: int = 1,
    secret_name: str = DEFAULT_SECRET,
    checkpoint_uri: str = "",
) -> Outputs:
    """Parameters:

    params: every hyperparameter (the params.yaml mapping; default: the repository's params.yaml at compile time);
        its data section chooses the data (the demo, a built-in benchmark's features, a manifest).
    source_uri: folder or s3:// prefix with train_videos.csv, test_videos.csv, dataset.yaml, instead of the demo
        videos (with data.dataset=demo; empty: the data section).
    features_uri: optional s3:// prefix the shards extract into (resumable, shared); empty: KFP artifacts.
    num_shards: extraction fan-out (at most one shard per video; at most max_parallel_shards at once).
    accelerator_type / accelerator_count: GPU request of extraction and training (e.g. nvidia.com/gpu, 1).
    secret_name: Kubernetes Secret whose MLFLOW_* / AWS_* keys become environment variables (optional); the
        MLflow server is its MLFLOW_TRACKING_URI, or compile/submit --tracking-uri (set on every pod).
    checkpoint_uri: s3:// prefix keeping training checkpoints across pod restarts (a retried training resumes).
    """
    step = split(params, secret_name)
    opened = tracked(sized(c.open_run(params=step.outputs["open_run"]), "light", secret_name))
    opened.set_display_name("open MLflow run")
    opened.set_caching_options(False)  # one parent run per execution
    feats = add_features(
        step, source_uri, features_uri, num_shards, accelerator_type, accelerator_count, secret_name
    )
    feats.plan.after(opened)  # the run is open before any stage logs into it
    dataset = feats.dataset

    stage1 = c.train_stage1(
        dataset=dataset,
        params=step.outputs["train_stage1"],
        checkpoint_uri=checkpoint_uri,
    )
    tracked(gpu_training(stage1, "train stage 1", secret_name, accelerator_type, accelerator_count))
    pseudo = tracked(
        sized(
            c.pseudo_labels(
                dataset=dataset,
                stage1=stage1.outputs["model"],
                params=step.outputs["pseudo_labels"],
            ),
            "compute",
            secret_name,
        )
    )
    pseudo.set_display_name("pseudo labels (CAR)")
    stage2 = c.train_stage2(
        dataset=dataset,
        pseudo=pseudo.outputs["pseudo"],
        params=step.outputs["train_stage2"],
        checkpoint_uri=checkpoint_uri,
    )
    tracked(gpu_training(stage2, "train stage 2", secret_name, accelerator_type, accelerator_count))
    evaluated = tracked(
        evaluation(
            dataset,
            stage2.outputs["model"],
            step.outputs["evaluate"],
            "CPL-VAD (stage 2)",
            "evaluate",
            secret_name,
        )
    )
    registration = tracked(
        sized(
            c.register(
                dataset=dataset,
                stage1=stage1.outputs["model"],
                pseudo=pseudo.outputs["pseudo"],
                stage2=stage2.outputs["model"],
                evaluation=evaluated.outputs["evaluation"],
                params=step.outputs["register"],
            ),
            "light",
            secret_name,
        )
    )
    registration.set_display_name("register (MLflow)")
    registration.set_caching_options(False)  # a side effect: every run is logged and registered
    return Outputs(
        stage2.outputs["model"],
        evaluated.outputs["metrics"],
        evaluated.outputs["classification"],
        evaluated.outputs["report"],
    )


DESCRIPTION = (
    "CPL-VAD: raw videos to a registered anomaly detector (features, stage 1, pseudo labels, "
    "stage 2, evaluation, MLflow registration)."
)


def build() -> Any:
    """The pipeline, traced now: tasks take the components' image at this moment (see ``components.set_image``)."""
    return dsl.pipeline(name=NAME, description=described(DESCRIPTION))(training)
