"""One experiment over several seeds: per-seed metrics, their mean and sample standard deviation.

A difference between two settings means something only next to the spread between seeds of one
setting; ``cplvad run --seeds`` and ``cplvad ablate --seeds`` report both. Each seed runs in its own
folder ``seed-<s>`` with ``seed: s`` (model initialisation, batch order and validation split), so an
interrupted multi-seed run resumes seed by seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from cplvad.config import Config
from cplvad.errors import ConfigError
from cplvad.io import write_json
from cplvad.workflow.stages import METRICS_FILE, run_all

Metrics = Mapping[str, float | None]


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2]; distinct non-negative integers."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--seeds {text!r}: expected comma-separated integers, e.g. --seeds 0,1,2"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds {text!r}: expected distinct non-negative integers, e.g. --seeds 0,1,2")
    return seeds


def seed_dir(out: str | Path, seed: int) -> Path:
    return Path(out) / f"seed-{seed}"


def with_seed(config: Config, seed: int) -> Config:
    return config.model_copy(update={"seed": seed})


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1; None for one value); None if any value is undefined."""
    if not values or any(v is None or math.isnan(v) for v in values):
        return None, None
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else None
    return round(float(arr.mean()), 4), None if std is None else round(std, 4)


def summarise(per_seed: Mapping[int, Metrics]) -> dict[str, object]:
    """``{"seeds", "mean", "std", "per_seed"}``: the layout of a multi-seed metrics.json."""
    keys = list(dict.fromkeys(k for m in per_seed.values() for k in m))
    mean, std = {}, {}
    for key in keys:
        mean[key], std[key] = mean_std([m.get(key) for m in per_seed.values()])
    return {
        "seeds": list(per_seed),
        "mean": mean,
        "std": std,
        "per_seed": {str(s): dict(m) for s, m in per_seed.items()},
    }


def format_mean_std(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def seeds_table(summary: Mapping[str, object], title: str) -> Table:
    """Metric rows; a column per seed and one for mean ± std."""
    seeds = [str(s) for s in summary["seeds"]]
    per_seed, mean, std = summary["per_seed"], summary["mean"], summary["std"]
    table = Table(title=title)
    table.add_column("metric")
    for s in seeds:
        table.add_column(f"seed {s}", justify="right")
    table.add_column("mean ± std", justify="right")
    for key in mean:
        cells = [per_seed[s].get(key) for s in seeds]
        table.add_row(
            key, *("n/a" if v is None else f"{v:.2f}" for v in cells), format_mean_std(mean[key], std[key])
        )
    return table


def run_seeds(
    dataset_path: str | Path,
    out_dir: str | Path,
    config: Config,
    *,
    seeds: Sequence[int],
    progress: bool = True,
    console: Console | None = None,
    track: bool = False,
) -> dict[str, object]:
    """``run_all`` once per seed into ``seed-<s>``; ``metrics.json`` in ``out_dir`` holds the final (stage 2)
    metrics per seed, their mean and standard deviation. Tracked: one parent MLflow run, a child per seed."""
    per_seed = {}
    for seed in seeds:
        results = run_all(
            dataset_path, seed_dir(out_dir, seed), with_seed(config, seed), progress=progress, console=console
        )
        per_seed[seed] = results["stage2"]
    summary = summarise(per_seed)
    write_json(Path(out_dir) / METRICS_FILE, summary)
    if console is not None:
        console.print(
            seeds_table(summary, f"{Path(out_dir)}: stage 2 over seeds {', '.join(map(str, seeds))}")
        )
    if track:
        track_seeds(dataset_path, out_dir, summary, config)
    return summary


def track_seeds(
    dataset_path: str | Path, out_dir: str | Path, summary: Mapping[str, object], config: Config
) -> str:
    """A parent run with the mean and std (``std.<metric>``) and a child run per seed; returns the parent's id.
    No model is registered: register one seed's model with a single-seed run."""
    import mlflow

    from cplvad.data.dataset import load_dataset
    from cplvad.tracking.runs import dataset_checksum, setup_mlflow

    dataset = load_dataset(dataset_path)
    experiment_id = setup_mlflow(config)
    tags = {"cplvad.dataset": dataset.name, "cplvad.data_checksum": dataset_checksum(dataset)}
    seeds = summary["seeds"]
    with mlflow.start_run(experiment_id=experiment_id, run_name="seeds", tags=tags) as parent:
        mlflow.log_params({**config.flat(), "seed": ",".join(map(str, seeds))})
        log_mean_std(summary["mean"], summary["std"])
        for seed in seeds:
            with mlflow.start_run(run_name=f"seed {seed}", nested=True, tags={"cplvad.seed": str(seed)}):
                mlflow.log_param("seed", seed)
                mlflow.log_metrics(defined(summary["per_seed"][str(seed)]))
                mlflow.log_artifact(str(seed_dir(out_dir, seed) / METRICS_FILE))
        mlflow.log_artifact(str(Path(out_dir) / METRICS_FILE))
        return parent.info.run_id


def defined(metrics: Metrics) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None}


def log_mean_std(mean: Metrics, std: Metrics) -> None:
    """The means under the metric names and the standard deviations as ``std.<metric>``."""
    import mlflow

    mlflow.log_metrics({**defined(mean), **{f"std.{k}": v for k, v in defined(std).items()}})
