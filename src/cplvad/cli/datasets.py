"""``cplvad datasets``: the built-in datasets, a check of a features folder, and the pipeline's data step."""

from __future__ import annotations

import sys

import click

from cplvad.cli.main import cli, command_tempdir, config_options, console, open_dataset
from cplvad.cli.outputs import OutputFolder
from cplvad.config import Config, config_from_dict, dataset_kind
from cplvad.errors import ConfigError


@cli.group("datasets", invoke_without_command=True)
@click.pass_context
def datasets(ctx: click.Context) -> None:
    """List the built-in datasets (without a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    from cplvad.data.benchmark_specs import BENCHMARKS
    from cplvad.data.benchmarks import load_benchmark

    console.print(
        "demo         synthetic demo videos, generated and extracted by the pipeline (the default of "
        "data.dataset)",
        highlight=False,
        soft_wrap=True,
    )
    for name in BENCHMARKS:
        b = load_benchmark(name)
        console.print(
            f"{name:<12} {b.title}: {len(b.classes)} classes, {b.train_videos} training and {len(b.test)} "
            f"test videos; published features ({b.release}) located by data.features_root; headline "
            f"metric {b.headline_metric}",
            highlight=False,
            soft_wrap=True,
        )


@datasets.command("check")
@click.argument("dataset")
@click.option(
    "--features-root",
    default=None,
    help="The features folder (data.features_root): a built-in benchmark's release, or rebases a manifest.",
)
@config_options
def check_cmd(dataset: str, features_root: str | None, config: Config) -> None:
    """Say what DATASET (a built-in name or a dataset.yaml) holds; exit 1 when training could not run."""
    from cplvad.data.check import check_dataset
    from cplvad.data.dataset import load_dataset
    from cplvad.data.selection import resolve_dataset

    kind = dataset_kind(dataset)
    if features_root is not None:
        data = {"dataset": dataset, "features_root": features_root}
        config = config_from_dict(
            {**config.to_dict(), "data": data}, f"{dataset} --features-root {features_root}"
        )
    if kind == "manifest" and features_root is not None:
        path = str(resolve_dataset(config.data, command_tempdir("cplvad-check-") / "dataset"))
    else:
        roots = (config.data.features_root, config.data.train_features_root, config.data.test_features_root)
        if kind == "benchmark" and all(r is None for r in roots):
            raise ConfigError(
                f"{dataset}: give the folder of its published features with --features-root DIR "
                "(or data.features_root)"
            )
        path, config = open_dataset(dataset, config)
    report = check_dataset(load_dataset(path))
    for line in report.lines():
        console.print(line, highlight=False, soft_wrap=True)
    if not report.ok:
        sys.exit(1)


@datasets.command("prepare")
@click.argument("dataset", required=False)
@click.option("--out", type=OutputFolder(), required=True, help="The dataset folder to write.")
@click.option(
    "--demo-videos",
    type=click.Path(file_okay=False),
    default=None,
    help="The folder of `cplvad demo-videos` (for data.dataset=demo).",
)
@click.option(
    "--work-dir",
    type=OutputFolder(),
    default=None,
    help="Where an extraction keeps its partial work (default: .<out name>.work beside --out).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@config_options
def prepare_cmd(
    dataset: str | None, out: str, demo_videos: str | None, work_dir: str | None, quiet: bool, config: Config
) -> None:
    """The pipeline's data step: resolve the data section (DATASET: data.dataset, its default) into --out
    (dataset.yaml, lists, annotations, and features/ when videos are extracted; a built-in benchmark is
    checked, not copied)."""
    from cplvad.workflow.data import prepare_data

    if dataset is not None and dataset != config.data.dataset:
        config = config_from_dict(
            {**config.to_dict(), "data": {**config.data.model_dump(), "dataset": dataset}},
            f"DATASET {dataset} with the data section",
        )

    manifest = prepare_data(
        config,
        out,
        demo_dir=demo_videos,
        work_dir=work_dir,
        progress=not quiet,
        log=lambda msg: console.print(msg, highlight=False, soft_wrap=True),
    )
    console.print(f"data.dataset={config.data.dataset}: wrote {manifest}", highlight=False)
