"""Lineage in MLflow: which data a pipeline execution used (``mlflow.log_input``: the training list, its
held-out validation videos and the test list, each with its source and digest), and which earlier run
first produced the same outputs (an execution whose stages DVC restored from its run cache).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from cplvad.data.dataset import Dataset
from cplvad.tracking.runs import mlflow_module

DATA_CHECKSUM_TAG = "cplvad.data_checksum"
OUTPUTS_TAG = "cplvad.outputs_digest"
"""Parent-run tag: sha256 over the final model's weights and the test metrics of an execution."""
ORIGINAL_RUN_TAG = "cplvad.original_run"
"""Parent-run tag of an execution whose outputs an earlier run produced first (DVC restored its stages from
the run cache, or a rerun gave the very same model): that run's id."""
MODEL_VERSION_TAG = "cplvad.model_version"
"""Parent-run tag: the registered version of the execution's final model."""
DIGEST_CHARS = 32
"""MLflow keeps at most 36 characters of a dataset digest."""


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:DIGEST_CHARS] if path.is_file() else "missing"


def _source(location: str) -> Any:
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    try:
        return resolve_dataset_source(location)
    except mlflow_module().exceptions.MlflowException:  # a scheme MLflow has no source type for
        from mlflow.data.http_dataset_source import HTTPDatasetSource

        return HTTPDatasetSource(location)


def log_dataset_inputs(
    run_id: str,
    dataset: Dataset,
    checksum: str,
    *,
    source: str | None = None,
    validation: dict[str, Any] | None = None,
) -> None:
    """Log the training list (context ``training``), its held-out videos (``validation``, when the model
    has a validation split; digest = the split's identity) and the test list (``testing``) as inputs of
    ``run_id``. ``source``: where the data lives for others (e.g. the Kubeflow artifact URI of the dataset
    folder); default: the lists' paths."""
    mlflow = mlflow_module()
    from mlflow.data.meta_dataset import MetaDataset

    def named(split_path: Path) -> str:
        return f"{source.rstrip('/')}/{split_path.name}" if source else str(Path(split_path).resolve())

    tags = {DATA_CHECKSUM_TAG: checksum}
    inputs = [
        (
            MetaDataset(
                _source(named(dataset.train.path)), f"{dataset.name}/train", _file_digest(dataset.train.path)
            ),
            "training",
            {**tags, "videos": str(len(dataset.train))},
        ),
        (
            MetaDataset(
                _source(named(dataset.test.path)), f"{dataset.name}/test", _file_digest(dataset.test.path)
            ),
            "testing",
            {**tags, "videos": str(len(dataset.test))},
        ),
    ]
    if validation:
        inputs.insert(
            1,
            (
                MetaDataset(
                    _source(named(dataset.train.path)),
                    f"{dataset.name}/validation",
                    str(validation.get("split")),
                ),
                "validation",
                {
                    **tags,
                    "videos": str(validation.get("videos")),
                    "fraction": str(validation.get("fraction")),
                },
            ),
        )
    with mlflow.start_run(run_id=run_id, nested=True):
        for ds, context, input_tags in inputs:
            mlflow.log_input(ds, context=context, tags=input_tags)


def outputs_digest(weights_digest: str, metrics: dict[str, float | None]) -> str:
    """What an execution produced, as one digest: the final model's weights and the test metrics."""
    text = weights_digest + repr(sorted((k, v) for k, v in metrics.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def original_run(run_id: str, digest: str) -> tuple[str, str | None] | None:
    """The earliest other finished run of ``run_id``'s experiment with the same outputs digest, and the
    model version it registered; None when these outputs are new."""
    client = mlflow_module().MlflowClient()
    experiment_id = client.get_run(run_id).info.experiment_id
    found = client.search_runs(
        [experiment_id],
        f"tags.`{OUTPUTS_TAG}` = '{digest}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
        max_results=10,
    )
    for run in found:
        if run.info.run_id != run_id:
            return run.info.run_id, run.data.tags.get(MODEL_VERSION_TAG)
    return None
