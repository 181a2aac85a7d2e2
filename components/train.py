"""Training components: stage 1, pseudo labels (CAR) and stage 2 (``cplvad.workflow``).

Each takes the merged ``dataset`` artifact and the configuration sections it reads as ``params`` plus
optional ``overrides`` (``section.key=value`` strings, as ``--set``). Each step logs into MLflow while it
runs, as a nested run of the pipeline's parent run (found through ``$CPLVAD_PIPELINE_RUN``; nothing is
logged without it), on the server of the pod's ``MLFLOW_TRACKING_URI``: an environment variable, not an
input, so the tracking server is no part of the step's cache key. ``checkpoint_uri``: an ``s3://`` prefix
that keeps the training checkpoints across pod restarts, so that a retried step resumes.
"""

from typing import Optional

from kfp.dsl import Dataset, Input, Model, Output

from components.image import component


@component
def train_stage1(
    dataset: Input[Dataset],
    params: dict,
    model: Output[Model],
    checkpoint_uri: str = "",
    overrides: Optional[list] = None,
):
    """The pseudo-label model, from video-level labels only (``cplvad train --stage 1``)."""
    from cplvad.pipeline_step import pipeline_step
    from cplvad.workflow import train_stage

    step = pipeline_step(params, dataset.path, overrides)
    result = train_stage(
        step.manifest,
        model.path,
        step.config,
        stage=1,
        progress=False,
        parent_run=step.parent_run,
        checkpoint_uri=checkpoint_uri,
    )
    model.metadata.update({"stage": 1, "framework": "pytorch", **result.summary()})


@component
def pseudo_labels(
    dataset: Input[Dataset],
    stage1: Input[Model],
    params: dict,
    pseudo: Output[Dataset],
    overrides: Optional[list] = None,
):
    """Pseudo labels of every training sample from the stage-1 model, refined by CAR (``config.car``);
    written as ``pseudo.npz`` inside the artifact (``cplvad pseudo-labels``)."""
    from pathlib import Path

    from cplvad.pipeline_step import pipeline_step
    from cplvad.workflow import PSEUDO_FILE, make_pseudo_labels

    step = pipeline_step(params, dataset.path, overrides)
    labels = make_pseudo_labels(
        step.manifest,
        stage1.path,
        step.config,
        out=Path(pseudo.path) / PSEUDO_FILE,
        progress=False,
        parent_run=step.parent_run,
    )
    pseudo.metadata.update({"car_enabled": step.config.car.enabled, **labels.stats()})


@component
def train_stage2(
    dataset: Input[Dataset],
    pseudo: Input[Dataset],
    params: dict,
    model: Output[Model],
    supervision: str = "",
    checkpoint_uri: str = "",
    overrides: Optional[list] = None,
):
    """The final model, cross-supervised by the pseudo labels (``cplvad train --stage 2``);
    ``supervision`` (cross | b_to_c | c_to_b | self) overrides ``stage2.supervision`` when given."""
    from pathlib import Path

    from cplvad.pipeline_step import pipeline_step
    from cplvad.workflow import PSEUDO_FILE, train_stage

    extra = [f"stage2.supervision={supervision}"] if supervision else []
    step = pipeline_step(params, dataset.path, [*(overrides or []), *extra])
    result = train_stage(
        step.manifest,
        model.path,
        step.config,
        stage=2,
        pseudo_path=Path(pseudo.path) / PSEUDO_FILE,
        progress=False,
        parent_run=step.parent_run,
        checkpoint_uri=checkpoint_uri,
    )
    model.metadata.update(
        {
            "stage": 2,
            "framework": "pytorch",
            "supervision": step.config.stage2.supervision,
            **result.summary(),
        }
    )
