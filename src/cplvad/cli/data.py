"""Data and evaluation commands: ``demo-data`` and ``metrics``."""

from __future__ import annotations

from pathlib import Path

import click

from cplvad.cli.main import cli, config_options, console, dataset_option
from cplvad.cli.outputs import OutputFile, OutputFolder
from cplvad.config import Config
from cplvad.data import load_dataset
from cplvad.data.demo import write_demo_dataset
from cplvad.eval import Predictions, configured_metrics, print_metrics, validate
from cplvad.eval.baselines import oracle_predictions, random_predictions
from cplvad.io import write_json


@cli.command("demo-data")
@click.option("--out", type=OutputFolder(), required=True, help="Folder to write the dataset into.")
@click.option("--seed", type=int, default=None, help="Random seed (default: demo.seed).")
@config_options
def demo_data(out: str, seed: int | None, config: Config) -> None:
    """Write a small synthetic feature-level dataset (features, lists, annotations, dataset.yaml)."""
    cfg = config.demo if seed is None else config.demo.model_copy(update={"seed": seed})
    manifest = write_demo_dataset(out, cfg)
    info = load_dataset(manifest).describe()
    console.print(
        f"wrote {manifest}: {info['train_videos']} training videos ({info['train_samples']} crops), "
        f"{info['test_videos']} test videos, classes {info['classes']}"
    )


@cli.command("metrics")
@click.option(
    "--predictions", type=click.Path(dir_okay=False), required=True, help="Predictions .npz (P.npz format)."
)
@click.option("--out", type=OutputFile(), default=None, help="Write metrics.json here.")
@config_options
@dataset_option
def metrics(dataset_path: str, predictions: str, out: str | None, config: Config) -> None:
    """Score a predictions file with the published protocol (no feature files needed)."""
    dataset = load_dataset(dataset_path)
    pred = validate(Predictions.load(predictions), dataset, source=f"predictions {predictions}")
    result = configured_metrics(dataset, pred, config.eval)
    print_metrics(result, title=f"{dataset.name}: {Path(predictions).name}", console=console)
    if out:
        write_json(out, result)
        console.print(f"wrote {out}")


@cli.command("baseline")
@click.option(
    "--kind", type=click.Choice(["oracle", "random"]), required=True, help="Which reference predictor."
)
@click.option("--out", type=OutputFile(), required=True, help="Predictions .npz to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random predictor.")
@config_options
@dataset_option
def baseline(dataset_path: str, kind: str, out: str, seed: int, config: Config) -> None:
    """Write reference predictions (oracle = ground truth, or random) to sanity-check `cplvad metrics`."""
    dataset = load_dataset(dataset_path)
    lengths = dataset.test_lengths_from_features()
    pred = (
        oracle_predictions(dataset, lengths)
        if kind == "oracle"
        else random_predictions(dataset, lengths, seed)
    )
    pred.save(out)
    console.print(f"wrote {kind} predictions for {len(pred.names)} test videos to {out}")
