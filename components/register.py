"""MLflow components: open the pipeline's parent run when it starts (``open_run``); close it and register the
final model as ``candidate`` when it ends (``register``)."""

from typing import NamedTuple, Optional

from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from components.image import component


@component
def register(
    dataset: Input[Dataset],
    stage1: Input[Model],
    pseudo: Input[Dataset],
    stage2: Input[Model],
    evaluation: Input[Artifact],
    params: dict,
    report: Output[Markdown],
    overrides: Optional[list] = None,
) -> NamedTuple("Registration", [("run_id", str), ("model_version", str)]):
    """``cplvad track``: close the pipeline's MLflow parent run (opened by ``open_run``; a new one without it),
    adding a nested run for every stage that did not log itself (cached steps, the extraction), and register
    the final model (its model card as description, the dataset artifact as its data lineage) as
    ``<tracking.registered_model>`` with alias ``candidate``.

    ``params``: the ``tracking`` keys (experiment, artifact location, registered model). The server is the
    pod's ``MLFLOW_TRACKING_URI``; credentials come from the standard ``MLFLOW_*`` / ``AWS_*`` variables.
    """
    from pathlib import Path

    from cplvad.pipeline_step import pipeline_step
    from cplvad.tracking.registry import registration_markdown
    from cplvad.workflow import outputs_in_folders, track_pipeline

    step = pipeline_step(params, dataset.path, overrides)
    outputs = outputs_in_folders(
        dataset.path,
        stage1=stage1.path,
        pseudo_dir=pseudo.path,
        stage2=stage2.path,
        evaluation_dir=evaluation.path,
    )
    record = track_pipeline(step.manifest, outputs, step.config, data_source=dataset.uri)
    Path(report.path).write_text(registration_markdown(record))
    report.metadata.update({"run_id": record["run_id"], "model_version": record["model_version"] or ""})
    return (record["run_id"], record["model_version"] or "")


@component
def open_run(params: dict) -> str:
    """Open the MLflow parent run of this pipeline execution when it starts (the steps find it through
    ``$CPLVAD_PIPELINE_RUN``, the run's workflow name); its id, empty when the pods are not given one.
    ``params``: what the pipeline's steps read (recorded as the run's parameters) and the ``tracking`` keys."""
    from cplvad.pipeline_step import step_config
    from cplvad.tracking.pipeline_run import find_parent

    return find_parent(step_config(params)) or ""
