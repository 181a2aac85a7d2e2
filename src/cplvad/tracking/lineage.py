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
    ``run_id``, each tagged with the data checksum. ``source``: where the dataset folder lives for others
    (e.g. its Kubeflow artifact URI); default: the lists' paths here."""
    mlflow = mlflow_module()
    from mlflow.data.meta_dataset import MetaDataset

    def location(path: Path) -> str:
        if not source:
            return str(Path(path).resolve())
        try:
            relative = Path(path).resolve().relative_to(Path(dataset.root).resolve()).as_posix()
        except ValueError:
            relative = Path(path).name
        return f"{source.rstrip('/')}/{relative}"

    train, test = dataset.train.path, dataset.test.path
    inputs = [("training", train, "train", _file_digest(train), {"videos": str(len(dataset.train))})]
    if validation:
        held_out = {"videos": str(validation.get("videos")), "fraction": str(validation.get("fraction"))}
        inputs.append(("validation", train, "validation", str(validation.get("split")), held_out))
    inputs.append(("testing", test, "test", _file_digest(test), {"videos": str(len(dataset.test))}))
    with mlflow.start_run(run_id=run_id, nested=True):
        for context, path, part, digest, tags in inputs:
            data = MetaDataset(_source(location(path)), f"{dataset.name}/{part}", digest)
            mlflow.log_input(data, context=context, tags={DATA_CHECKSUM_TAG: checksum, **tags})


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
