"""MLflow tracking of a pipeline execution: one parent run, one nested run per stage.

Stages run as separate processes (DVC, Kubeflow), so their records are collected from the files they
leave (history.json, meta.json, pseudo.npz, metrics.json, plots) by one process at the end: the
``track`` stage. The standard ``MLFLOW_*`` environment variables win over the ``tracking`` section, so
a remote server (``MLFLOW_TRACKING_URI``) and an S3 artifact store (``AWS_*``, ``MLFLOW_S3_ENDPOINT_URL``)
work without code changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cplvad.config import Config
from cplvad.data.dataset import Dataset
from cplvad.pseudo.labels import PseudoLabels

log = logging.getLogger(__name__)


def project_root() -> Path:
    """Where relative tracking paths are anchored: the DVC project, else the working directory.

    DVC sets ``DVC_ROOT`` for every stage command; for a queued experiment (``dvc exp run --queue``), which
    runs in a temporary copy of the project, it is the original project's root, so the runs land in the
    project's store and not in the copy that is deleted afterwards.
    """
    return Path(os.environ.get("DVC_ROOT") or ".").resolve()


def absolute_sqlite(uri: str) -> str:
    """``sqlite:///mlflow.db`` -> ``sqlite:////<project root>/mlflow.db``: the store does not move with the cwd."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(project_root() / uri[len(prefix):])
    return uri


def artifact_location(config: Config, tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: the configured location (a relative path anchored at the
    project root), else ``<project root>/mlruns`` for a local SQLite store (MLflow's ``./mlruns``, anchored)."""
    location = config.tracking.artifact_location
    if location is None:
        return (project_root() / "mlruns").as_uri() if tracking_uri.startswith("sqlite:") else None
    return location if "://" in location or Path(location).is_absolute() else (project_root() / location).as_uri()


def setup_mlflow(config: Config) -> str:
    """Point MLflow at the tracking store and experiment; returns the experiment id."""
    import mlflow

    uri = absolute_sqlite(os.environ.get("MLFLOW_TRACKING_URI") or config.tracking.tracking_uri)
    mlflow.set_tracking_uri(uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or config.tracking.experiment
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location(config, uri))
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)  # nested runs inherit the active experiment
    return experiment_id


def dvc_experiment_tags() -> dict[str, str]:
    """The DVC experiment a stage runs in (``dvc exp run``), to find the run from ``dvc exp show`` and back."""
    names = {"DVC_EXP_NAME": "dvc.exp_name", "DVC_EXP_BASELINE_REV": "dvc.exp_baseline_rev"}
    return {tag: os.environ[var] for var, tag in names.items() if os.environ.get(var)}


def git_commit(cwd: str | Path = ".") -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def dataset_checksum(dataset: Dataset) -> str:
    """sha256 over the manifest, both lists and the annotation files: which data a run used."""
    digest = hashlib.sha256()
    paths = [dataset.source, dataset.train.path, dataset.test.path]
    for p in (dataset.manifest.annotations, dataset.manifest.segment_annotations):
        if p is not None:
            paths.append(p if p.is_absolute() else dataset.root / p)
    for p in paths:
        if p is not None and Path(p).is_file():
            digest.update(Path(p).read_bytes())
    return digest.hexdigest()


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def log_history(history: list[dict[str, float]]) -> None:
    import mlflow

    for record in history:
        epoch = int(record["epoch"])
        mlflow.log_metrics({f"train_{k}": float(v) for k, v in record.items() if k != "epoch"}, step=epoch)


@contextmanager
def nested(name: str, **tags: str) -> Iterator[None]:
    import mlflow

    with mlflow.start_run(run_name=name, nested=True, tags={"cplvad.stage": name, **tags}):
        yield


def log_model_stage(name: str, model_dir: Path) -> None:
    """A training stage: its config section, per-epoch losses, meta (incl. calibration)."""
    import mlflow

    with nested(name):
        meta = _read_json(model_dir / "meta.json") or {}
        mlflow.log_params({"stage": meta.get("stage"), "train_samples": meta.get("train_samples")})
        calibration = meta.get("extra", {}).get("calibration")
        if calibration:
            mlflow.log_metric("calibrated_threshold", calibration["threshold"])
        log_history(_read_json(model_dir / "history.json") or [])
        for f in ("meta.json", "history.json", "config.json"):
            if (model_dir / f).is_file():
                mlflow.log_artifact(str(model_dir / f))


@dataclass
class PipelineOutputs:
    """Where one pipeline execution left its files (any may be None when a stage did not run)."""

    stage1: Path | None = None
    pseudo: Path | None = None
    stage2: Path | None = None
    metrics: Path | None = None
    plots: Path | None = None
    extraction_manifests: tuple[Path, ...] = ()


def log_pipeline(
    outputs: PipelineOutputs, dataset: Dataset, config: Config, run_name: str = "pipeline", tags: dict | None = None
) -> str:
    """Log one pipeline execution (parent run + nested stage runs); returns the parent run id."""
    import mlflow

    experiment_id = setup_mlflow(config)
    commit = git_commit()
    base_tags = {"cplvad.dataset": dataset.name, "cplvad.data_checksum": dataset_checksum(dataset),
                 **dvc_experiment_tags()}
    if commit:
        base_tags["mlflow.source.git.commit"] = commit
    base_tags.update(tags or {})
    run_name = base_tags.get("dvc.exp_name", run_name)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=base_tags) as parent:
        mlflow.log_params(config.flat())
        for manifest in outputs.extraction_manifests:
            if manifest.is_file():
                with nested("extract"):
                    mlflow.log_artifact(str(manifest))
        if outputs.stage1 is not None:
            log_model_stage("train_stage1", outputs.stage1)
        if outputs.pseudo is not None and outputs.pseudo.is_file():
            with nested("pseudo_labels"):
                pseudo = PseudoLabels.load(outputs.pseudo)
                mlflow.log_params({f"car.{k}": v for k, v in pseudo.car.items()})
                mlflow.log_metrics(pseudo.stats())
        if outputs.stage2 is not None:
            log_model_stage("train_stage2", outputs.stage2)
        metrics = _read_json(outputs.metrics) if outputs.metrics else None
        if metrics:
            clean = {k: float(v) for k, v in metrics.items() if v is not None}
            with nested("evaluate"):
                mlflow.log_metrics(clean)
                mlflow.log_artifact(str(outputs.metrics))
                if outputs.plots is not None and outputs.plots.is_dir():
                    mlflow.log_artifacts(str(outputs.plots), artifact_path="plots")
            mlflow.log_metrics(clean)
        return parent.info.run_id
