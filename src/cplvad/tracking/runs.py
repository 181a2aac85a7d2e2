"""MLflow runs of the stages: the tracking store, a nested run per stage, and what each stage records.

A stage's run is nested under its pipeline's parent run (:mod:`cplvad.tracking.pipeline_run`). It is
written while the stage runs (per-epoch losses as they happen, then the stage's results), or, for a stage
that did not run here (skipped because its output was already there, or restored from a cache), from the
files the stage left (``add_missing_stages``). Both go through the same ``record_*`` functions. The
standard ``MLFLOW_*`` environment variables win over the ``tracking`` section, so a remote server
(``MLFLOW_TRACKING_URI``) and an S3 artifact store (``AWS_*``, ``MLFLOW_S3_ENDPOINT_URL``) work without
code changes. Credentials are read from the environment only (``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` / ``MLFLOW_TRACKING_TOKEN``, ``AWS_*``); the user info of a tracking URI is
moved there (``credentials_to_environment``), so nothing MLflow records holds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cplvad.config import Config
from cplvad.data.dataset import Dataset
from cplvad.extras import require
from cplvad.pseudo.labels import PseudoLabels
from cplvad.redact import split_credentials, strip_credentials
from cplvad.storage.ownership import MARKER_DIR

if TYPE_CHECKING:
    from cplvad.extract.runner import ExtractionReport

log = logging.getLogger(__name__)

STAGE_TAG = "cplvad.stage"
PARENT_TAG = "mlflow.parentRunId"
SOURCE_COMMIT_ENV = "CPLVAD_SOURCE_COMMIT"
"""The git commit of a run's code where no checkout is at hand (a Kubeflow pod; the pipeline sets it)."""


def mlflow_module() -> Any:
    return require("mlflow", "MLflow tracking (--track, --mlflow-parent, track, promote, models:/ URIs)")


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
        return prefix + str(project_root() / uri[len(prefix) :])
    return uri


def use_tracking_uri(uri: str) -> None:
    """Make ``uri`` (when given: e.g. a pipeline parameter) win over ``MLFLOW_TRACKING_URI`` and
    ``tracking.tracking_uri`` for this process and the processes it starts."""
    if uri:
        os.environ["MLFLOW_TRACKING_URI"] = uri


def experiment_name(config: Config) -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or config.tracking.experiment


def artifact_location(config: Config, tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: the configured location (a relative path anchored at the
    project root; stored by the tracking server, so without credentials), else ``<project root>/mlruns``
    for a local SQLite store (MLflow's ``./mlruns``, anchored)."""
    location = config.tracking.artifact_location
    if location is None:
        return (project_root() / "mlruns").as_uri() if tracking_uri.startswith("sqlite:") else None
    return (
        strip_credentials(location)
        if "://" in location or Path(location).is_absolute()
        else (project_root() / location).as_uri()
    )


def credentials_to_environment(uri: str) -> str:
    """``uri`` without credentials; the user name and password of its user info become
    ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` of this process and the processes it starts,
    where MLflow reads them. So MLflow is never given a URI that holds a credential, and no URI it prints,
    records or hands to a child process holds one."""
    bare, user, password = split_credentials(uri)
    for name, value in (("MLFLOW_TRACKING_USERNAME", user), ("MLFLOW_TRACKING_PASSWORD", password)):
        if value:
            os.environ[name] = value
    return bare


def use_store(config: Config) -> str:
    """Point MLflow at the tracking store (``MLFLOW_TRACKING_URI``, else ``tracking.tracking_uri``) without
    touching any experiment (the registry and ``models:/`` URIs need no experiment); its URI."""
    uri = absolute_sqlite(os.environ.get("MLFLOW_TRACKING_URI") or config.tracking.tracking_uri)
    uri = credentials_to_environment(uri)
    mlflow_module().set_tracking_uri(uri)
    return uri


def setup_mlflow(config: Config) -> str:
    """Point MLflow at the tracking store (credentials moved to the environment) and the experiment;
    returns the experiment id."""
    mlflow = mlflow_module()
    uri = use_store(config)
    name = experiment_name(config)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location(config, uri))
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def dvc_experiment_tags() -> dict[str, str]:
    """The DVC experiment a stage runs in (``dvc exp run``), to find the run from ``dvc exp show`` and back."""
    names = {"DVC_EXP_NAME": "dvc.exp_name", "DVC_EXP_BASELINE_REV": "dvc.exp_baseline_rev"}
    return {tag: os.environ[var] for var, tag in names.items() if os.environ.get(var)}


def git_commit(cwd: str | Path = ".") -> str | None:
    """HEAD of the checkout at ``cwd``, else ``$CPLVAD_SOURCE_COMMIT``, else None."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        out = None
    if out is not None and out.returncode == 0:
        return out.stdout.strip()
    return os.environ.get(SOURCE_COMMIT_ENV) or None


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


def dataset_tags(dataset: Dataset) -> dict[str, str]:
    return {"cplvad.dataset": dataset.name, "cplvad.data_checksum": dataset_checksum(dataset)}


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


class StageRun:
    """One stage's nested run under ``parent_id``, created at its first record: a stage that finds its
    output already done records nothing and is added from its files at the end. Without a parent
    (``parent_id`` None) every method does nothing, so stage code logs unconditionally."""

    def __init__(self, name: str, parent_id: str | None) -> None:
        self.name, self.parent_id = name, parent_id
        self.run_id: str | None = None
        self._live = parent_id is not None

    def _run(self) -> str:
        if self.run_id is None:
            client = mlflow_module().MlflowClient()
            experiment_id = client.get_run(self.parent_id).info.experiment_id
            run = client.create_run(
                experiment_id, run_name=self.name, tags={PARENT_TAG: self.parent_id, STAGE_TAG: self.name}
            )
            self.run_id = run.info.run_id
        return self.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        if self._live:
            mlflow_module().MlflowClient().log_batch(
                self._run(), params=[_param(k, v) for k, v in params.items()]
            )

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        if self._live and metrics:
            stamp = int(time.time() * 1000)
            entities = mlflow_module().entities
            rows = [entities.Metric(k, float(v), stamp, step) for k, v in metrics.items()]
            mlflow_module().MlflowClient().log_batch(self._run(), metrics=rows)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self._live and path.exists():
            client = mlflow_module().MlflowClient()
            if path.is_dir():  # its content, without cplvad's bookkeeping (.cplvad/: ownership, lock)
                for item in sorted(p for p in path.iterdir() if p.name != MARKER_DIR):
                    inner = f"{artifact_path}/{item.name}" if artifact_path else item.name
                    self.log_artifact(item, inner if item.is_dir() else artifact_path)
            else:
                client.log_artifact(self._run(), str(path), artifact_path)

    def log_epoch(self, record: dict[str, float]) -> None:
        """A ``train(on_epoch=...)`` hook. A tracking outage must not cost the training: the failure is
        reported once and the stage's losses are added from history.json at the end instead."""
        if not self._live:
            return
        try:
            self.log_metrics(
                {f"train_{k}": v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"])
            )
        except Exception as exc:  # MLflow raises its own and the HTTP client's exceptions
            log.warning(
                "MLflow stopped taking the losses of %s (%s); they are logged when the pipeline ends",
                self.name,
                exc,
            )
            self._live = False

    def end(self, status: str) -> None:
        if self.run_id is not None:
            mlflow_module().MlflowClient().set_terminated(self.run_id, status)


def _param(key: str, value: Any) -> Any:
    return mlflow_module().entities.Param(key, str(value))


@contextmanager
def stage_run(name: str, parent_id: str | None) -> Iterator[StageRun]:
    """A :class:`StageRun` that ends FINISHED, or FAILED (KILLED on an interrupt) when the stage raises."""
    run = StageRun(name, parent_id)
    try:
        yield run
    except KeyboardInterrupt:
        run.end("KILLED")
        raise
    except BaseException:
        run.end("FAILED")
        raise
    run.end("FINISHED")


# --------------------------------------------------------------------------- what each stage records


def record_extraction(run: StageRun, report: ExtractionReport, list_name: str) -> None:
    """An extraction (one video list): counts, speed, and its manifest when it is a local file."""
    run.log_params({"list": list_name})
    run.log_metrics(
        {
            "videos": report.selected,
            "extracted": report.extracted,
            "skipped": report.skipped,
            "failed": len(report.failed),
            "seconds": report.seconds,
            "frames_per_second": report.frames / max(report.seconds, 1e-9),
        }
    )
    if report.sink.local is not None:
        run.log_artifact(report.sink.local / report.names.manifest)


def record_model(run: StageRun, model_dir: Path, *, history: bool) -> None:
    """A training stage: stage and sample count, the calibrated threshold, the model's description files;
    with ``history``, its per-epoch losses (a live run logged them as they happened)."""
    meta = _read_json(model_dir / "meta.json") or {}
    run.log_params({"stage": meta.get("stage"), "train_samples": meta.get("train_samples")})
    calibration = meta.get("extra", {}).get("calibration")
    if calibration:
        run.log_metrics({"calibrated_threshold": calibration["threshold"]})
    if history:
        for record in _read_json(model_dir / "history.json") or []:
            run.log_metrics(
                {f"train_{k}": v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"])
            )
    for name in ("meta.json", "history.json", "config.json"):
        run.log_artifact(model_dir / name)


def record_pseudo_labels(run: StageRun, pseudo: PseudoLabels) -> None:
    run.log_params({f"car.{k}": v for k, v in pseudo.car.items()})
    run.log_metrics(pseudo.stats())


def record_evaluation(
    run: StageRun, metrics: dict[str, float | None], metrics_file: Path | None, plots: Path | None
) -> None:
    run.log_metrics({k: v for k, v in metrics.items() if v is not None})
    if metrics_file is not None:
        run.log_artifact(metrics_file)
    if plots is not None:
        run.log_artifact(plots, "plots")


@dataclass
class PipelineOutputs:
    """Where one pipeline execution left its files (any may be None when a stage did not run)."""

    stage1: Path | None = None
    pseudo: Path | None = None
    stage2: Path | None = None
    metrics: Path | None = None
    plots: Path | None = None
    extraction_manifests: tuple[Path, ...] = ()

    def final_metrics(self) -> dict[str, float | None] | None:
        return _read_json(self.metrics) if self.metrics is not None else None


def logged_stages(parent_id: str) -> set[str]:
    """The stages that already have a finished run under ``parent_id`` (a failed attempt does not count)."""
    client = mlflow_module().MlflowClient()
    experiment_id = client.get_run(parent_id).info.experiment_id
    children = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{parent_id}'", max_results=1000)
    return {c.data.tags.get(STAGE_TAG) for c in children if c.info.status == "FINISHED"}


def add_missing_stages(parent_id: str, outputs: PipelineOutputs) -> list[str]:
    """Give every stage with outputs but no run under ``parent_id`` its run, from its files; the names."""
    done = logged_stages(parent_id)
    added = []

    def missing(name: str, present: bool) -> bool:
        if present and name not in done:
            added.append(name)
            return True
        return False

    manifests = [m for m in outputs.extraction_manifests if m.is_file()]
    if missing("extract", bool(manifests)):
        with stage_run("extract", parent_id) as run:
            for manifest in manifests:
                run.log_artifact(manifest)
    for name, model_dir in (("train_stage1", outputs.stage1), ("train_stage2", outputs.stage2)):
        if missing(name, model_dir is not None and (model_dir / "meta.json").is_file()):
            with stage_run(name, parent_id) as run:
                record_model(run, model_dir, history=True)
    if missing("pseudo_labels", outputs.pseudo is not None and outputs.pseudo.is_file()):
        with stage_run("pseudo_labels", parent_id) as run:
            record_pseudo_labels(run, PseudoLabels.load(outputs.pseudo))
    metrics = outputs.final_metrics()
    if missing("evaluate", bool(metrics)):
        with stage_run("evaluate", parent_id) as run:
            record_evaluation(run, metrics, outputs.metrics, outputs.plots)
    return added
