"""The stages of the method as functions on paths, shared by the CLI, DVC stages and Kubeflow components."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from cplvad import preflight
from cplvad.config import Config
from cplvad.data.dataset import Dataset, load_dataset
from cplvad.device import resolve_device
from cplvad.eval.metrics import compute_metrics, print_metrics
from cplvad.eval.plots import write_plots
from cplvad.eval.predictions import Predictions, validate
from cplvad.eval.scoring import predict_test_set
from cplvad.io import write_json
from cplvad.modeling.factory import check_classes, load_model, read_model_config
from cplvad.pseudo.labels import PseudoLabels, generate
from cplvad.redact import redact
from cplvad.tracking.registry import resolve_model
from cplvad.tracking.runs import PipelineOutputs
from cplvad.train.calibration import CALIBRATION_KEY, calibrate
from cplvad.train.data import TrainingSet, load_training_set
from cplvad.train.trainer import TrainResult, train

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.npz"
PSEUDO_FILE = "pseudo.npz"
TRACKING_FILE = "mlflow_run.json"


def _training_set(dataset: Dataset, config: Config, progress: bool) -> TrainingSet:
    return load_training_set(dataset, config.model.max_len, progress=progress)


def train_stage(
    dataset_path: str | Path,
    out_dir: str | Path,
    config: Config,
    *,
    stage: int,
    pseudo_path: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    replace_stale: bool = False,
) -> TrainResult:
    """Train one stage, then calibrate its decision threshold on the normal training videos."""
    dataset = load_dataset(dataset_path)
    pseudo = PseudoLabels.load(pseudo_path) if pseudo_path is not None else None
    data = _training_set(dataset, config, progress)
    result = train(config, data, out_dir, stage=stage, classes=list(dataset.classes.names), dataset_name=dataset.name,
                   pseudo=pseudo, progress=progress, force=force, replace_stale=replace_stale)
    _, meta = read_model_config(out_dir)
    calibration = meta.extra.get(CALIBRATION_KEY, {})
    if calibration.get("false_alarm_rate") != config.predict.false_alarm_rate:
        calibrate(out_dir, dataset, config.predict.false_alarm_rate, resolve_device(config.train.device, "train.device"), progress)
    return result


def make_pseudo_labels(
    dataset_path: str | Path, model_dir: str | Path, config: Config, *, out: str | Path, progress: bool = True
) -> PseudoLabels:
    """Pseudo labels of every training sample from a (stage-1) model, refined with ``config.car``."""
    dataset = load_dataset(dataset_path)
    device = resolve_device(config.train.device, "train.device")
    model, model_config, meta = load_model(model_dir, device)
    check_classes(meta, dataset.classes.names, model_dir, str(dataset_path))
    data = load_training_set(dataset, model_config.model.max_len, progress=progress)
    pseudo = generate(model, data, config.car, device, progress=progress)
    pseudo.save(out)
    return pseudo


@dataclass
class Evaluation:
    metrics: dict[str, float | None]
    predictions: Predictions


def evaluate(
    dataset_path: str | Path,
    model_dir: str | Path,
    config: Config,
    *,
    metrics_out: str | Path | None = None,
    predictions_out: str | Path | None = None,
    progress: bool = True,
    console: Console | None = None,
    plots_dir: str | Path | None = None,
) -> Evaluation:
    """Score the test list with a model (a directory or an MLflow URI such as ``models:/cplvad@champion``),
    compute the published metrics, write them (atomically), and optionally the curve data and timelines."""
    model_dir = resolve_model(model_dir, config)
    dataset = load_dataset(dataset_path)
    device = resolve_device(config.train.device, "train.device")
    model, _, meta = load_model(model_dir, device)
    check_classes(meta, dataset.classes.names, model_dir, str(dataset_path))
    pred = validate(predict_test_set(model, dataset, device, progress=progress), dataset, source=str(model_dir))
    metrics = compute_metrics(dataset, pred, smoothing=config.eval.smoothing)
    if predictions_out is not None:
        pred.save(predictions_out)
    if plots_dir is not None:
        write_plots(dataset, pred, dataset.frame_ground_truth(pred.lengths), plots_dir)
    if metrics_out is not None:
        write_json(metrics_out, metrics)
    if console is not None:
        print_metrics(metrics, title=f"{dataset.name}: {model_dir}", console=console)
    return Evaluation(metrics, pred)


def run_all(
    dataset_path: str | Path,
    out_dir: str | Path,
    config: Config,
    *,
    progress: bool = True,
    console: Console | None = None,
    track: bool = False,
) -> dict[str, dict[str, float | None]]:
    """Stage 1, its evaluation (the baseline row), pseudo labels, stage 2 and the final evaluation
    (with plots in ``stage2/plots``); optionally tracked in MLflow with the final model registered.

    Each step is skipped when its output already exists for the same inputs, so an interrupted run resumes.
    Every feature file, the CLIP weights, ``out_dir`` and the tracking store are checked first (preflight):
    a bad input stops the run in seconds, before ``out_dir`` is created.
    """
    summary = preflight.for_training_run(load_dataset(dataset_path), out_dir, config, track=track)
    if console is not None:
        console.print(summary, highlight=False, soft_wrap=True)
    out = Path(out_dir)
    stage1, stage2, pseudo = out / "stage1", out / "stage2", out / PSEUDO_FILE
    train_stage(dataset_path, stage1, config, stage=1, progress=progress)
    m1 = evaluate(dataset_path, stage1, config, metrics_out=stage1 / METRICS_FILE, predictions_out=stage1 / PREDICTIONS_FILE, progress=progress, console=console)
    make_pseudo_labels(dataset_path, stage1, config, out=pseudo, progress=progress)
    train_stage(dataset_path, stage2, config, stage=2, pseudo_path=pseudo, progress=progress)
    m2 = evaluate(dataset_path, stage2, config, metrics_out=stage2 / METRICS_FILE, predictions_out=stage2 / PREDICTIONS_FILE, progress=progress, console=console,
                  plots_dir=stage2 / "plots")
    shutil.copyfile(stage2 / METRICS_FILE, out / METRICS_FILE)
    if track:
        outputs = PipelineOutputs(stage1, pseudo, stage2, stage2 / METRICS_FILE, stage2 / "plots")
        track_pipeline(dataset_path, outputs, config, record=out / TRACKING_FILE)
    return {"stage1": m1.metrics, "stage2": m2.metrics}


def track_pipeline(
    dataset_path: str | Path, outputs: PipelineOutputs, config: Config, *, record: str | Path | None = None,
    register: bool = True,
) -> dict[str, str | None]:
    """Log a finished pipeline execution to MLflow and register its final model as ``candidate``."""
    from cplvad.tracking.registry import register_model
    from cplvad.tracking.runs import log_pipeline

    dataset = load_dataset(dataset_path)
    run_id = log_pipeline(outputs, dataset, config)
    final = outputs.stage2 or outputs.stage1
    version = None
    if register and final is not None and outputs.metrics is not None:
        metrics = json.loads(Path(outputs.metrics).read_text())
        version = register_model(final, run_id, dataset.name, metrics, config)
    import mlflow

    result = {"run_id": run_id, "model_version": version, "tracking_uri": redact(mlflow.get_tracking_uri()),
              "registered_model": config.tracking.registered_model if version else None}
    if record is not None:
        write_json(record, result)
    return result
