"""The stages of the method as functions on paths, shared by the CLI, DVC stages and Kubeflow components.

Each stage logs itself into MLflow while it runs when given a parent run (``cplvad.tracking``; MLflow itself
is imported only then).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from cplvad import preflight
from cplvad.config import Config
from cplvad.data.dataset import Dataset, load_dataset
from cplvad.data.training_set import TrainingSet
from cplvad.device import resolve_device
from cplvad.eval.metrics import configured_metrics, print_metrics
from cplvad.eval.plots import write_plots
from cplvad.eval.predictions import Predictions, validate
from cplvad.eval.scoring import predict_test_set
from cplvad.feedback.metrics import PREFIX as FEEDBACK_PREFIX
from cplvad.feedback.metrics import feedback_metrics, print_feedback
from cplvad.feedback.training import training_set
from cplvad.io import copy_file, write_json
from cplvad.modeling.dual_branch import LevelFusion
from cplvad.modeling.factory import CALIBRATION_KEY, check_classes, load_model, read_model_config
from cplvad.pseudo.labels import PseudoLabels, generate
from cplvad.redact import strip_credentials
from cplvad.storage.ownership import claim_folder, replace_folder
from cplvad.tracking.registry import resolve_model
from cplvad.tracking.runs import (
    PipelineOutputs,
    record_evaluation,
    record_model,
    record_pseudo_labels,
    stage_run,
)
from cplvad.train.calibration import calibrate
from cplvad.train.checkpoint_mirror import CheckpointMirror
from cplvad.train.trainer import TrainResult, fingerprint, train

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.npz"
PSEUDO_FILE = "pseudo.npz"
TRACKING_FILE = "mlflow_run.json"
RUN_RECORD_FORMAT = "cplvad-run-record/1"
"""The ``format`` of the run record ``cplvad track --out`` writes. The record travels through git (a DVC
metrics file, kept between runs), without the ledger of its folder, so its content says whose it is."""
PARENT_RUN_FILE = "mlflow_parent.json"
"""Where ``run --track`` keeps its open MLflow parent run, so that an interrupted run continues it."""
SUMMARY_FILE = "summary.json"
PLOTS_DIR = "plots"


def _training_set(dataset: Dataset, config: Config, progress: bool) -> TrainingSet:
    return training_set(dataset, config, config.model.max_len, progress=progress)


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
    parent_run: str | None = None,
    checkpoint_uri: str | None = None,
    work_dir: str | Path | None = None,
) -> TrainResult:
    """Train one stage, then calibrate its decision threshold on the normal training videos.

    ``parent_run``: log the stage as a nested run of that MLflow run while it trains (losses per epoch).
    ``checkpoint_uri``: also keep the checkpoints under this ``s3://`` prefix or folder, and resume from
    there when ``out_dir`` starts empty (a retried Kubeflow pod; see ``train.checkpoint_mirror``).
    ``work_dir``: train (and resume) there and move only the finished model to ``out_dir``, for pipeline
    tools that delete their outputs before a run (DVC) but should still resume an interrupted training.
    Both folders must be new, empty or cplvad's own (``cplvad.storage.ownership``), and are locked while
    it trains.
    """
    with ExitStack() as claims:
        claims.enter_context(claim_folder(out_dir, "model directory"))
        if work_dir is not None:
            claims.enter_context(claim_folder(work_dir, "work folder"))
        dataset = load_dataset(dataset_path)
        pseudo = PseudoLabels.load(pseudo_path) if pseudo_path is not None else None
        data = _training_set(dataset, config, progress)
        target = Path(work_dir) if work_dir is not None else Path(out_dir)
        mirror = (
            CheckpointMirror(checkpoint_uri, fingerprint(config, data, stage, pseudo))
            if checkpoint_uri
            else None
        )
        if mirror is not None:
            mirror.restore(target)
        with stage_run(f"train_stage{stage}", parent_run) as run:
            result = train(
                config,
                data,
                target,
                stage=stage,
                classes=list(dataset.classes.names),
                dataset_name=dataset.name,
                pseudo=pseudo,
                progress=progress,
                force=force,
                replace_stale=replace_stale,
                on_epoch=run.log_epoch,
                on_checkpoint=mirror.push if mirror is not None else None,
            )
            _calibrate(target, dataset, config, progress)
            if not result.skipped:
                for record in result.history[: result.resumed_from]:  # epochs of an earlier attempt
                    run.log_epoch(record)
                record_model(run, target, history=False)
        if mirror is not None:
            mirror.discard()
        if work_dir is not None:
            replace_folder(target, out_dir)
            result.model_dir = Path(out_dir)
        return result


def _calibrate(model_dir: str | Path, dataset: Dataset, config: Config, progress: bool) -> None:
    """Calibrate the decision threshold unless the model already has one for the configured false-alarm rate."""
    _, meta = read_model_config(model_dir)
    if meta.extra.get(CALIBRATION_KEY, {}).get("false_alarm_rate") != config.predict.false_alarm_rate:
        calibrate(
            model_dir,
            dataset,
            config.predict.false_alarm_rate,
            resolve_device(config.train.device, "train.device"),
            progress,
        )


def make_pseudo_labels(
    dataset_path: str | Path,
    model_dir: str | Path,
    config: Config,
    *,
    out: str | Path,
    progress: bool = True,
    parent_run: str | None = None,
) -> PseudoLabels:
    """Pseudo labels of every training sample from a (stage-1) model, refined with ``config.car``;
    ``parent_run``: logged as a nested run of that MLflow run."""
    dataset = load_dataset(dataset_path)
    device = resolve_device(config.train.device, "train.device")
    model, model_config, meta = load_model(model_dir, device)
    check_classes(meta, dataset.classes.names, model_dir, str(dataset_path))
    data = training_set(dataset, config, model_config.model.max_len, progress=progress)
    with stage_run("pseudo_labels", parent_run) as run:
        pseudo = generate(model, data, config.car, device, progress=progress)
        pseudo.save(out)
        record_pseudo_labels(run, pseudo)
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
    parent_run: str | None = None,
) -> Evaluation:
    """Score the test list with a model (a directory or an MLflow URI such as ``models:/cplvad@champion``),
    compute the published metrics, write them (atomically), and optionally the curve data and timelines;
    ``parent_run``: logged as a nested run of that MLflow run."""
    model_dir = resolve_model(model_dir, config)
    dataset = load_dataset(dataset_path)
    device = resolve_device(config.train.device, "train.device")
    model, _, meta = load_model(model_dir, device)
    model.fusion = LevelFusion(config.eval.level_fusion, config.eval.level_upsampling)  # this config's eval
    check_classes(meta, dataset.classes.names, model_dir, str(dataset_path))
    with stage_run("evaluate", parent_run) as run:
        pred = validate(
            predict_test_set(model, dataset, device, progress=progress), dataset, source=str(model_dir)
        )
        metrics = configured_metrics(dataset, pred, config.eval)
        if config.data.feedback is not None:  # the operators' verdicts (cplvad.feedback.metrics)
            metrics.update(
                feedback_metrics(
                    model,
                    meta,
                    config.data.feedback,
                    config.predict.min_event_snippets,
                    device,
                    dataset.frames_per_snippet,
                )
            )
        if predictions_out is not None:
            pred.save(predictions_out)
        if plots_dir is not None:
            write_plots(dataset, pred, dataset.frame_ground_truth(pred.lengths), plots_dir)
        if metrics_out is not None:
            write_json(metrics_out, metrics)
        record_evaluation(
            run,
            metrics,
            Path(metrics_out) if metrics_out is not None else None,
            Path(plots_dir) if plots_dir is not None else None,
        )
    if console is not None:
        published = {k: v for k, v in metrics.items() if not k.startswith(FEEDBACK_PREFIX)}
        print_metrics(published, title=f"{dataset.name}: {model_dir}", console=console)
        if len(published) < len(metrics):
            feedback = {k: v for k, v in metrics.items() if k.startswith(FEEDBACK_PREFIX)}
            print_feedback(feedback, console, f"feedback: {config.data.feedback}")
    return Evaluation(metrics, pred)


def evaluate_into(
    dataset_path: str | Path,
    model_dir: str | Path,
    config: Config,
    out_dir: str | Path,
    *,
    label: str = "",
    parent_run: str | None = None,
) -> Evaluation:
    """``evaluate`` with every output in one folder: metrics.json, predictions.npz, plots/ and summary.json
    (``label``, the model, the metrics: what an ablation table collects, see ``read_summary``)."""
    out = Path(out_dir)
    result = evaluate(
        dataset_path,
        model_dir,
        config,
        metrics_out=out / METRICS_FILE,
        predictions_out=out / PREDICTIONS_FILE,
        progress=False,
        plots_dir=out / PLOTS_DIR,
        parent_run=parent_run,
    )
    write_json(out / SUMMARY_FILE, {"label": label, "model": str(model_dir), "metrics": result.metrics})
    return result


def read_summary(evaluation_dir: str | Path) -> tuple[str, dict[str, float | None]]:
    """(label, metrics) of an ``evaluate_into`` folder."""
    summary = json.loads((Path(evaluation_dir) / SUMMARY_FILE).read_text())
    return summary["label"], summary["metrics"]


def outputs_in_folders(
    dataset_dir: str | Path,
    *,
    stage1: str | Path,
    pseudo_dir: str | Path,
    stage2: str | Path,
    evaluation_dir: str | Path,
) -> PipelineOutputs:
    """The files of a pipeline execution whose steps each wrote one folder: a merged dataset folder (with
    its extraction manifests), two model directories, a folder with pseudo.npz and an ``evaluate_into``
    folder."""
    evaluation = Path(evaluation_dir)
    return PipelineOutputs(
        stage1=Path(stage1),
        pseudo=Path(pseudo_dir) / PSEUDO_FILE,
        stage2=Path(stage2),
        metrics=evaluation / METRICS_FILE,
        plots=evaluation / PLOTS_DIR,
        extraction_manifests=tuple(sorted((Path(dataset_dir) / "features").glob("*.extraction.json"))),
    )


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
    (with plots in ``stage2/plots``); with ``track``, an MLflow parent run opened first, each stage logged
    into it as it runs, and the final model registered.

    Each step is skipped when its output already exists for the same inputs, so an interrupted run resumes
    (and, tracked, continues the same parent run). Every feature file, the CLIP weights, ``out_dir`` and the
    tracking store are checked first (preflight): a bad input stops the run in seconds, before ``out_dir``
    is created.
    """
    from cplvad.tracking.pipeline_run import find_parent

    summary = preflight.for_training_run(load_dataset(dataset_path), out_dir, config, track=track)
    if console is not None:
        console.print(summary, highlight=False, soft_wrap=True)
    out = Path(out_dir)
    stage1, stage2, pseudo = out / "stage1", out / "stage2", out / PSEUDO_FILE
    parent = find_parent(config, record=out / PARENT_RUN_FILE) if track else None
    train_stage(dataset_path, stage1, config, stage=1, progress=progress, parent_run=parent)
    m1 = evaluate(
        dataset_path,
        stage1,
        config,
        metrics_out=stage1 / METRICS_FILE,
        predictions_out=stage1 / PREDICTIONS_FILE,
        progress=progress,
        console=console,
    )
    make_pseudo_labels(dataset_path, stage1, config, out=pseudo, progress=progress, parent_run=parent)
    train_stage(
        dataset_path, stage2, config, stage=2, pseudo_path=pseudo, progress=progress, parent_run=parent
    )
    m2 = evaluate(
        dataset_path,
        stage2,
        config,
        metrics_out=stage2 / METRICS_FILE,
        predictions_out=stage2 / PREDICTIONS_FILE,
        progress=progress,
        console=console,
        plots_dir=stage2 / "plots",
        parent_run=parent,
    )
    copy_file(stage2 / METRICS_FILE, out / METRICS_FILE)
    if track:
        outputs = PipelineOutputs(stage1, pseudo, stage2, stage2 / METRICS_FILE, stage2 / "plots")
        track_pipeline(
            dataset_path, outputs, config, record=out / TRACKING_FILE, parent_record=out / PARENT_RUN_FILE
        )
    return {"stage1": m1.metrics, "stage2": m2.metrics}


def track_pipeline(
    dataset_path: str | Path,
    outputs: PipelineOutputs,
    config: Config,
    *,
    record: str | Path | None = None,
    register: bool = True,
    parent_record: str | Path | None = None,
    data_source: str | None = None,
) -> dict[str, str | None]:
    """Close the MLflow parent run of a pipeline execution (the one this process belongs to, see
    ``tracking.pipeline_run.find_parent``; a new one when none is named): add a run for every stage that
    did not log itself (from its files), the dataset lineage (``mlflow.log_input``), the final metrics and
    the data checksum, and register the final model with its model card.

    The new version becomes ``candidate`` unless this is a DVC experiment (``$DVC_EXP_NAME``) and
    ``tracking.alias_experiments`` is off. When an earlier run produced the very same model and metrics
    (DVC restored the stages from its run cache), nothing is registered again: the run is tagged
    ``cplvad.original_run`` and names that run's version. ``data_source``: where the data lives, for the
    lineage and the card (default: the manifest's path)."""
    from cplvad.modeling.factory import is_model_dir
    from cplvad.tracking.lineage import (
        MODEL_VERSION_TAG,
        ORIGINAL_RUN_TAG,
        OUTPUTS_TAG,
        log_dataset_inputs,
        original_run,
        outputs_digest,
    )
    from cplvad.tracking.model_card import CardContext, read_facts
    from cplvad.tracking.pipeline_run import close_parent, find_parent, log_outcome, open_parent
    from cplvad.tracking.registry import CANDIDATE, register_model
    from cplvad.tracking.runs import (
        add_missing_stages,
        dataset_tags,
        dvc_experiment_tags,
        experiment_name,
        git_commit,
        mlflow_module,
    )

    dataset = load_dataset(dataset_path)
    parent = find_parent(config, record=parent_record) or open_parent(config)
    add_missing_stages(parent, outputs)
    tags = dataset_tags(dataset)
    checksum = tags["cplvad.data_checksum"]
    metrics = outputs.final_metrics()
    final = outputs.stage2 or outputs.stage1
    facts = None
    if final is not None and is_model_dir(final):
        facts = read_facts(final, outputs.pseudo if final == outputs.stage2 else None)
    source = data_source or str(Path(dataset.source or dataset_path).resolve())
    log_dataset_inputs(parent, dataset, checksum, source=data_source, validation=facts and facts.validation)
    version = original = None
    if facts is not None and metrics:
        tags[OUTPUTS_TAG] = outputs_digest(facts.weights_digest, metrics)
        found = original_run(parent, tags[OUTPUTS_TAG])
        if found is not None:
            original, version = found
            tags[ORIGINAL_RUN_TAG] = original
    log_outcome(parent, tags, metrics or {})
    experiment = dvc_experiment_tags().get("dvc.exp_name")
    alias = experiment is None or config.tracking.alias_experiments
    client = mlflow_module().MlflowClient()
    name = config.tracking.registered_model
    if register and facts is not None and metrics:
        if version is None:
            card = CardContext(
                dataset=dataset.name,
                data_checksum=checksum,
                data_source=source,
                train_videos=len(dataset.train),
                test_videos=len(dataset.test),
                metrics=metrics,
                commit=git_commit(),
                run_id=parent,
                experiment=experiment,
            )
            version = register_model(
                final,
                parent,
                config,
                dataset=dataset.name,
                metrics=metrics,
                data_checksum=checksum,
                card=card,
                pseudo=outputs.pseudo if final == outputs.stage2 else None,
                alias=alias,
            )
        elif alias:
            client.set_registered_model_alias(name, CANDIDATE, version)
        client.set_tag(parent, MODEL_VERSION_TAG, version)
    else:
        version = None
    close_parent(parent)
    result = {
        "run_id": parent,
        "model_version": version,
        "alias": CANDIDATE if version and alias else None,
        "original_run": original,
        "tracking_uri": strip_credentials(mlflow_module().get_tracking_uri()),
        "experiment": experiment_name(config),
        "registered_model": name if version else None,
    }
    if record is not None:
        write_json(record, {"format": RUN_RECORD_FORMAT, **result})
    return result


def is_run_record(path: Path) -> bool:
    """Whether ``path`` is a run record that ``cplvad track`` wrote (and may replace)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == RUN_RECORD_FORMAT
    except (OSError, ValueError, AttributeError):
        return False
