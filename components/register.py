"""Registration: log the pipeline execution to MLflow and register the final model as ``candidate``."""

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
    tracking_uri: str,
    report: Output[Markdown],
    overrides: Optional[list] = None,
) -> NamedTuple("Registration", [("run_id", str), ("model_version", str)]):
    """``cplvad track``: an MLflow parent run with a nested run per stage (extraction manifests, training
    histories, pseudo-label statistics, metrics and plots) and the final model registered as
    ``<tracking.registered_model>`` with alias ``candidate`` (``cplvad promote`` decides the champion).

    ``tracking_uri`` (e.g. ``http://mlflow.mlflow.svc:5000``) wins over ``MLFLOW_TRACKING_URI`` and
    ``tracking.tracking_uri``; credentials come from the standard ``MLFLOW_*`` / ``AWS_*`` variables.
    """
    import os
    from pathlib import Path

    from cplvad.config import apply_overrides, config_from_dict
    from cplvad.tracking.runs import PipelineOutputs
    from cplvad.workflow import METRICS_FILE, PSEUDO_FILE, track_pipeline

    config = config_from_dict(apply_overrides(dict(params), overrides or []), "the pipeline parameter 'params'")
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    features = Path(dataset.path) / "features"
    outputs = PipelineOutputs(
        stage1=Path(stage1.path),
        pseudo=Path(pseudo.path) / PSEUDO_FILE,
        stage2=Path(stage2.path),
        metrics=Path(evaluation.path) / METRICS_FILE,
        plots=Path(evaluation.path) / "plots",
        extraction_manifests=tuple(sorted(features.glob("*.extraction.json"))),
    )
    record = track_pipeline(Path(dataset.path) / "dataset.yaml", outputs, config, record=Path(report.path).with_suffix(".json"))
    version = str(record["model_version"] or "")
    Path(report.path).write_text(
        "# CPL-VAD training run\n\n"
        f"- MLflow tracking URI: `{record['tracking_uri']}`\n"
        f"- MLflow run: `{record['run_id']}` (experiment `{os.environ.get('MLFLOW_EXPERIMENT_NAME') or config.tracking.experiment}`)\n"
        f"- Registered model: `{record['registered_model']}` version {version or 'none'} (alias `candidate`)\n\n"
        "Promote it with `cplvad promote` (it becomes `champion` if it beats the current one).\n"
    )
    report.metadata.update({"run_id": record["run_id"], "model_version": version})
    print(f"MLflow run {record['run_id']} at {record['tracking_uri']}; model version {version}")
    return (record["run_id"], version)
