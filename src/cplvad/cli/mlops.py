"""MLOps commands: ``track`` (log a pipeline execution, register its model), ``promote``, ``ablate``."""

from __future__ import annotations

from pathlib import Path

import click

from cplvad import preflight
from cplvad.cli.main import cli, config_options, console, dataset_option, seeds_option
from cplvad.cli.outputs import OutputFile, OutputFolder
from cplvad.config import Config
from cplvad.tracking.runs import PipelineOutputs
from cplvad.workflow import track_pipeline
from cplvad.workflow.stages import is_run_record

_dir = click.Path(file_okay=False)
_file = click.Path(dir_okay=False)


@cli.command("track")
@click.option("--stage1", type=_dir, default=None, help="Stage-1 model directory.")
@click.option("--pseudo", type=_file, default=None, help="pseudo.npz.")
@click.option("--stage2", type=_dir, default=None, help="Final (stage-2) model directory.")
@click.option("--metrics", type=_file, default=None, help="metrics.json of the final evaluation.")
@click.option("--plots", type=_dir, default=None, help="Plots folder of the final evaluation.")
@click.option("--extraction-manifest", "manifests", type=_file, multiple=True, help="Extraction manifest(s).")
@click.option(
    "--register/--no-register",
    default=True,
    show_default=True,
    help="Register the final model (as 'candidate', except in a DVC experiment: tracking.alias_experiments).",
)
@click.option(
    "--out",
    type=OutputFile(ours=is_run_record),
    default=None,
    help="Write the run id and model version here (JSON; an earlier record of cplvad's is replaced).",
)
@click.option(
    "--mlflow-parent",
    "mlflow_parent",
    type=OutputFile(),
    default=None,
    metavar="FILE",
    help="The pipeline run the stages logged into (their --mlflow-parent FILE); without it, or when "
    "it names a closed run, a new parent run is opened.",
)
@config_options
@dataset_option
def track_cmd(
    dataset_path: str,
    stage1: str | None,
    pseudo: str | None,
    stage2: str | None,
    metrics: str | None,
    plots: str | None,
    manifests: tuple[str, ...],
    register: bool,
    out: str | None,
    mlflow_parent: str | None,
    config: Config,
) -> None:
    """Close a pipeline execution's MLflow parent run: add a nested run for every stage that did not log
    itself (from the files given), the final metrics and data checksum; register the final model."""

    def path(p: str | None) -> Path | None:
        return Path(p) if p else None

    console.print(preflight.for_tracking(config), highlight=False, soft_wrap=True)
    outputs = PipelineOutputs(
        path(stage1),
        path(pseudo),
        path(stage2),
        path(metrics),
        path(plots),
        tuple(Path(m) for m in manifests),
    )
    result = track_pipeline(
        dataset_path, outputs, config, record=out, register=register, parent_record=mlflow_parent
    )
    registered = ""
    if result["model_version"]:
        registered = f"; {result['registered_model']} version {result['model_version']}" + (
            f" as '{result['alias']}'" if result["alias"] else " (no alias moved: a DVC experiment)"
        )
        if result["original_run"]:
            registered += f", first produced by run {result['original_run']}"
    console.print(f"MLflow run {result['run_id']} at {result['tracking_uri']}{registered}")


@cli.command("promote")
@click.option(
    "--version",
    default=None,
    metavar="N|ALIAS",
    help="The registered version to promote: a number (e.g. one a DVC experiment registered) or an alias "
    "[default: candidate].",
)
@config_options
def promote_cmd(version: str | None, config: Config) -> None:
    """Make a registered version (default: the 'candidate') the 'champion', on validation evidence only: its
    validation metric (tracking.promote_metric; the model's own held-out videos, or its validation twin's)
    must reach tracking.promote_floor and, on the champion's data and held-out videos, beat the champion's
    by tracking.promote_min_delta points. Prints why it did or did not promote."""
    from cplvad.feedback.metrics import feedback_check
    from cplvad.tracking.registry import CHECKS, promote

    preflight.for_tracking(config)
    result = promote(config, version, checks=[*CHECKS, feedback_check])
    console.print(
        ("[green]promoted[/]: " if result.promoted else "[yellow]not promoted[/]: ") + result.reason
    )


@cli.command("ablate")
@click.option(
    "--out", type=OutputFolder(), required=True, help="Folder for the models and the ablation report."
)
@click.option(
    "--track/--no-track",
    default=True,
    show_default=True,
    help="Log a parent MLflow run with one child per row.",
)
@click.option(
    "--grid",
    default="table3",
    show_default=True,
    help="table3: the paper's Table 3; car-rules: cross supervision with each built-in car.rule.",
)
@seeds_option
@click.option("--quiet", is_flag=True, help="No progress bars.")
@config_options
@dataset_option
def ablate_cmd(
    dataset_path: str,
    out: str,
    track: bool,
    grid: str,
    seeds: list[int] | None,
    quiet: bool,
    config: Config,
) -> None:
    """An ablation grid (shared stage 1): ablation.md, ablation.csv and ablation.png in --out (with --seeds:
    mean ± std over the seeds, and each seed's grid in OUT/seed-<s>/)."""
    from cplvad.workflow.ablation import run_ablation

    run_ablation(dataset_path, out, config, progress=not quiet, track=track, seeds=seeds, grid=grid)
    console.print((Path(out) / "ablation.md").read_text())
    console.print(f"wrote {out}/ablation.md, ablation.csv, ablation.png")
