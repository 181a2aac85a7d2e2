"""Model commands: ``train``, ``pseudo-labels``, ``evaluate`` and ``run`` (all of it)."""

from __future__ import annotations

from pathlib import Path

import click

from cplvad import preflight
from cplvad.cli.main import cli, config_options, console, dataset_option, parent_run_option, seeds_option
from cplvad.cli.outputs import OutputFile, OutputFolder
from cplvad.config import Config
from cplvad.data.dataset import load_dataset
from cplvad.errors import CplvadError
from cplvad.workflow import evaluate as evaluate_model
from cplvad.workflow import make_pseudo_labels, run_all, train_stage
from cplvad.workflow.seeds import run_seeds

_quiet = click.option("--quiet", is_flag=True, help="No progress bars.")


def _say(text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True)


@cli.command("train")
@click.option(
    "--stage", type=click.IntRange(1, 2), required=True, help="1: video labels only; 2: cross pseudo labels."
)
@click.option("--out", type=OutputFolder(), required=True, help="Model directory to write.")
@click.option("--pseudo", type=click.Path(dir_okay=False), default=None, help="pseudo.npz (stage 2 only).")
@click.option("--force", is_flag=True, help="Retrain even if --out holds a finished or different model.")
@click.option(
    "--replace-stale",
    is_flag=True,
    help="If --out holds a model of another config or data, retrain instead of stopping (pipelines).",
)
@click.option(
    "--work-dir",
    type=OutputFolder(),
    default=None,
    help="Train and keep checkpoints here; only the finished model moves to --out (same file system). "
    "For tools that delete --out before a run (DVC): a re-run still resumes.",
)
@_quiet
@config_options
@parent_run_option
@dataset_option
def train_cmd(
    dataset_path: str,
    stage: int,
    out: str,
    pseudo: str | None,
    force: bool,
    replace_stale: bool,
    work_dir: str | None,
    quiet: bool,
    parent_run: str | None,
    config: Config,
) -> None:
    """Train stage 1 or stage 2; an interrupted run resumes from its last checkpoint."""
    if (stage == 2) != (pseudo is not None):
        raise CplvadError("--pseudo is required for --stage 2 and not accepted for --stage 1")
    _say(preflight.for_training(load_dataset(dataset_path), out, config))
    result = train_stage(
        dataset_path,
        out,
        config,
        stage=stage,
        pseudo_path=pseudo,
        force=force,
        progress=not quiet,
        replace_stale=replace_stale,
        work_dir=work_dir,
        parent_run=parent_run,
    )
    if result.skipped:
        console.print(
            f"{out} already holds this stage-{stage} model for the same config and data: nothing to do"
        )
    else:
        last = result.history[-1] if result.history else {}
        console.print(
            f"stage {stage} trained in {result.seconds:.1f}s (final loss {last.get('loss', float('nan')):.4f}) -> {out}"
        )


@cli.command("pseudo-labels")
@click.option(
    "--model", "model_dir", type=click.Path(file_okay=False), required=True, help="Stage-1 model directory."
)
@click.option("--out", type=OutputFile(), required=True, help="pseudo.npz to write.")
@_quiet
@config_options
@parent_run_option
@dataset_option
def pseudo_labels_cmd(
    dataset_path: str, model_dir: str, out: str, quiet: bool, parent_run: str | None, config: Config
) -> None:
    """Score the training videos with a stage-1 model and refine both branches with CAR (car section)."""
    _say(
        preflight.for_scoring(
            load_dataset(dataset_path), model_dir, config, split="train", folders=[Path(out).parent]
        )
    )
    pseudo = make_pseudo_labels(
        dataset_path, model_dir, config, out=out, progress=not quiet, parent_run=parent_run
    )
    stats = ", ".join(f"{k} {v:.3f}" for k, v in pseudo.stats().items())
    console.print(f"wrote {out}: {len(pseudo.keys)} training samples; {stats}")


@cli.command("evaluate")
@click.option(
    "--model", "model_dir", required=True, help="Model directory, or an MLflow URI (models:/cplvad@champion)."
)
@click.option("--out", type=OutputFile(), required=True, help="metrics.json to write.")
@click.option("--predictions-out", type=OutputFile(), default=None, help="Also write predictions (P.npz).")
@click.option(
    "--plots",
    "plots_dir",
    type=OutputFolder(),
    default=None,
    help="Also write ROC/PR curve data and score timelines (CSV + PNG) into this folder.",
)
@_quiet
@config_options
@parent_run_option
@dataset_option
def evaluate_cmd(
    dataset_path: str,
    model_dir: str,
    out: str,
    predictions_out: str | None,
    plots_dir: str | None,
    quiet: bool,
    parent_run: str | None,
    config: Config,
) -> None:
    """Score the test list and compute the published metrics."""
    folders = [Path(p).parent for p in (out, predictions_out) if p] + ([Path(plots_dir)] if plots_dir else [])
    _say(preflight.for_scoring(load_dataset(dataset_path), model_dir, config, split="test", folders=folders))
    evaluate_model(
        dataset_path,
        model_dir,
        config,
        metrics_out=out,
        predictions_out=predictions_out,
        progress=not quiet,
        console=console,
        plots_dir=plots_dir,
        parent_run=parent_run,
    )
    written = [p for p in (out, predictions_out, plots_dir) if p]
    console.print("wrote " + ", ".join(written))


@cli.command("run")
@click.option("--out", type=OutputFolder(), required=True, help="Run directory.")
@click.option(
    "--track/--no-track",
    default=True,
    show_default=True,
    help="Log the run to MLflow as it runs (a parent run, a nested run per stage; the open parent is "
    "kept in OUT/mlflow_parent.json so a resumed run continues it) and register the final model "
    "as 'candidate'.",
)
@seeds_option
@_quiet
@config_options
@dataset_option
def run_cmd(
    dataset_path: str, out: str, track: bool, seeds: list[int] | None, quiet: bool, config: Config
) -> None:
    """Everything: stage 1 (+ its metrics), pseudo labels, stage 2 (+ final metrics and plots); resumable.

    With --seeds, once per seed; OUT/metrics.json then holds the final metrics per seed, mean and std
    (tracked as one MLflow run with a child per seed; no model is registered)."""
    if seeds is not None:
        run_seeds(dataset_path, out, config, seeds=seeds, progress=not quiet, console=console, track=track)
        console.print(
            f"done: {out}/metrics.json (seeds {', '.join(map(str, seeds))}; per seed in {out}/seed-<s>/)"
        )
        return
    results = run_all(dataset_path, out, config, progress=not quiet, console=console, track=track)
    s1, s2 = results["stage1"], results["stage2"]
    console.print(
        f"done: {out}/metrics.json  frame AUC {s1['frame_auc_binary']} -> {s2['frame_auc_binary']} (stage 1 -> 2), "
        f"AP {s1['frame_ap_binary']} -> {s2['frame_ap_binary']}, mAP {s1['map_avg']} -> {s2['map_avg']}"
    )
