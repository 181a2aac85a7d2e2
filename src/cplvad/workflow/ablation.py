"""Ablation grids on one dataset (``GRIDS``): the paper's Table 3 (``table3``: stage 1; B->C; C->B; self;
cross without CAR; cross with CAR) and the CAR rules (``car-rules``: stage 1; cross with each built-in
``car.rule``).

All rows share one stage-1 model and its pseudo labels (one file per CAR variant the grid needs: CAR on,
off, or a given rule; with several, ``pseudo_agreement.json`` compares them); each row is a stage-2
training and an evaluation. Written as ablation.csv, ablation.md and a bar chart (ablation.png); with
tracking on, one parent MLflow run holds a child run per row. Over several seeds (``seeds``), the grid runs
once per seed in ``seed-<s>`` and every cell is the mean ± sample standard deviation over the seeds
(per-seed values in ablation.csv and ablation.md, error bars on the chart, a grandchild run per seed).
With a validation split (``train.validation_fraction``), each row also reports its model's validation
video AUC, the number to choose settings by.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cplvad import preflight
from cplvad.config import Config
from cplvad.data.dataset import load_dataset
from cplvad.errors import ConfigError, DataError
from cplvad.eval.plots import save_png
from cplvad.io import write_json, write_text
from cplvad.pseudo.labels import PseudoLabels, agreement
from cplvad.train.validation import VALIDATION_KEY
from cplvad.workflow import evaluate, make_pseudo_labels, train_stage
from cplvad.workflow.seeds import defined, format_mean_std, log_mean_std, mean_std, seed_dir, with_seed


@dataclass(frozen=True)
class Row:
    label: str
    supervision: str | None
    """stage2.supervision, or None for the stage-1 row."""
    car: bool
    rule: str | None = None
    """car.rule of the row's pseudo labels; None = the config's."""

    @property
    def variant(self) -> str:
        """The pseudo-label file the row trains on: ``pseudo{variant}.npz``."""
        return "_nocar" if not self.car else (f"_{self.rule}" if self.rule else "")

    @property
    def slug(self) -> str:
        return "stage1" if self.supervision is None else f"{self.supervision}{self.variant}"


GRID = (
    Row("stage 1 (no pseudo labels)", None, True),
    Row("B -> C", "b_to_c", True),
    Row("C -> B", "c_to_b", True),
    Row("self", "self", True),
    Row("cross, CAR off", "cross", False),
    Row("cross, CAR on (CPL-VAD)", "cross", True),
)
CAR_RULE_GRID = (
    Row("stage 1 (no pseudo labels)", None, True),
    Row("cross, CAR simple", "cross", True, "simple"),
    Row("cross, CAR paper", "cross", True, "paper"),
    Row("cross, CAR release", "cross", True, "release"),
)
GRIDS = {"table3": GRID, "car-rules": CAR_RULE_GRID}
"""``cplvad ablate --grid NAME``; the Kubeflow ablation pipeline runs ``table3``."""
BASE = ("row", "supervision", "car", "rule")
"""A report line's setting columns (``rule`` only in grids that set one); the others are metrics."""
AGREEMENT_FILE = "pseudo_agreement.json"
COLUMNS = ("frame_auc_binary", "frame_ap_binary", "frame_auc_category", "frame_ap_category", "map_avg")
HEADERS = ("frame AUC (B)", "frame AP (B)", "frame AUC (C)", "frame AP (C)", "mAP avg")
VALIDATION_COLUMN = "val_video_auc"
"""The row model's validation video AUC (meta.json ``extra.validation``), when it has a validation split."""


def run_ablation(
    dataset_path: str | Path,
    out_dir: str | Path,
    config: Config,
    progress: bool = True,
    track: bool = True,
    seeds: Sequence[int] | None = None,
    grid: str = "table3",
) -> list[dict[str, object]]:
    """The grid ``GRIDS[grid]`` with ``config.seed``, or once per seed of ``seeds`` (rows then hold means,
    ``<column>_std`` and ``per_seed``)."""
    if grid not in GRIDS:
        raise ConfigError(f"ablation grid {grid!r} does not exist; choose one of {', '.join(GRIDS)}")
    preflight.for_training_run(load_dataset(dataset_path), out_dir, config, track=track)
    out = Path(out_dir)
    rows_of_grid = GRIDS[grid]
    if seeds is None:
        rows = run_grid(dataset_path, out, config, progress, rows_of_grid)
    else:
        per_seed = {}
        for seed in seeds:
            per_seed[seed] = run_grid(
                dataset_path, seed_dir(out, seed), with_seed(config, seed), progress, rows_of_grid
            )
            write_reports(per_seed[seed], seed_dir(out, seed))
        rows = summarise_rows(per_seed)
    write_reports(rows, out)
    if track:
        _track(rows, out, dataset_path, config)
    return rows


def run_grid(
    dataset_path: str | Path, out: Path, config: Config, progress: bool, grid: Sequence[Row] = GRID
) -> list[dict[str, object]]:
    """Every row of the grid with one seed, its models in ``out`` (one stage-1 model shared by all rows)."""
    rows: list[dict[str, object]] = []
    stage1 = out / "stage1"
    train_stage(dataset_path, stage1, config, stage=1, progress=progress)
    pseudo: dict[str, Path] = {}
    for row in grid:
        if row.supervision is not None and row.variant not in pseudo:
            pseudo[row.variant] = out / f"pseudo{row.variant}.npz"
            make_pseudo_labels(
                dataset_path, stage1, _car_variant(config, row), out=pseudo[row.variant], progress=progress
            )
    if len(pseudo) > 1:
        write_json(out / AGREEMENT_FILE, pseudo_agreement(pseudo))
    for row in grid:
        if row.supervision is None:
            model_dir = stage1
        else:
            cfg = config.model_copy(
                update={"stage2": config.stage2.model_copy(update={"supervision": row.supervision})}
            )
            model_dir = out / row.slug
            pseudo_path = pseudo[row.variant]
            train_stage(dataset_path, model_dir, cfg, stage=2, pseudo_path=pseudo_path, progress=progress)
        metrics = evaluate(
            dataset_path, model_dir, config, metrics_out=model_dir / "metrics.json", progress=progress
        ).metrics
        rows.append({**_record(row, metrics), **_validation_auc(model_dir)})
    return rows


def _car_variant(config: Config, row: Row) -> Config:
    """The config whose CAR section makes the row's pseudo labels."""
    update: dict[str, object] = {"enabled": row.car}
    if row.rule is not None:
        update["rule"] = row.rule
    return config.model_copy(update={"car": config.car.model_copy(update=update)})


def pseudo_agreement(files: dict[str, Path]) -> dict[str, dict[str, dict[str, float]]]:
    """Every pair of pseudo-label files of one stage-1 model, per branch: the share of valid abnormal
    snippets on which they agree and the IoU of their positive snippets (label >= 0.5)."""
    loaded = {name.lstrip("_") or "car": PseudoLabels.load(path) for name, path in files.items()}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (a, pa), (b, pb) in itertools.combinations(loaded.items(), 2):
        valid = (np.arange(pa.n)[None, :] < pa.lengths[:, None]) & pa.abnormal[:, None]
        out[f"{a} vs {b}"] = {
            branch: agreement(pa.labels[branch][valid] >= 0.5, pb.labels[branch][valid] >= 0.5)
            for branch in sorted(pa.labels.keys() & pb.labels.keys())
        }
    return out


def _validation_auc(model_dir: Path) -> dict[str, float]:
    meta = json.loads((model_dir / "meta.json").read_text())
    validation = meta.get("extra", {}).get(VALIDATION_KEY)
    return {VALIDATION_COLUMN: validation["video_auc"]} if validation else {}


def summarise_rows(per_seed: dict[int, list[dict[str, object]]]) -> list[dict[str, object]]:
    """One row per grid row: the mean of every metric over the seeds, ``<metric>_std`` and ``per_seed``."""
    first = next(iter(per_seed.values()))
    rows = []
    for i, base in enumerate(first):
        row = {k: base[k] for k in BASE if k in base}
        metrics = [k for k in base if k not in row]
        for key in metrics:
            row[key], row[f"{key}_std"] = mean_std([per_seed[s][i][key] for s in per_seed])
        row["per_seed"] = {str(s): {k: per_seed[s][i][k] for k in metrics} for s in per_seed}
        rows.append(row)
    return rows


def _record(row: Row, metrics: dict[str, float | None]) -> dict[str, object]:
    """A line of the reports: the row's setting and its metrics."""
    rule = {} if row.rule is None else {"rule": row.rule}
    return {"row": row.label, "supervision": row.supervision or "none", "car": row.car, **rule, **metrics}


def grid_rows(metrics_by_label: dict[str, dict[str, float | None]]) -> list[dict[str, object]]:
    """The report lines of the grid from the rows' metrics (keyed by ``Row.label``), computed elsewhere,
    e.g. by parallel Kubeflow tasks. Every row of the grid must be there."""
    missing = [row.label for row in GRID if row.label not in metrics_by_label]
    if missing:
        raise DataError(f"no evaluation for the ablation rows {missing}; got {sorted(metrics_by_label)}")
    return [_record(row, metrics_by_label[row.label]) for row in GRID]


def write_reports(rows: list[dict[str, object]], out: Path) -> None:
    """ablation.csv (one line per row, or per row and seed plus its mean and std), ablation.md, ablation.png.

    ``rows`` are single-seed rows, or ``summarise_rows`` rows (with ``<column>_std`` and ``per_seed``)."""
    seeds = list(rows[0].get("per_seed", {}))
    validation = VALIDATION_COLUMN in rows[0]
    columns = (*COLUMNS, VALIDATION_COLUMN) if validation else COLUMNS
    headers = (*HEADERS, "validation video AUC") if validation else HEADERS
    write_text(out / "ablation.csv", _csv(rows, seeds))

    def cell(r: dict[str, object], c: str) -> str:
        return format_mean_std(r[c], r.get(f"{c}_std")) if seeds else _fmt(r[c])

    lines = ["| setting | " + " | ".join(headers) + " |", "| --- |" + " ---: |" * len(columns)]
    lines += [f"| {r['row']} | " + " | ".join(cell(r, c) for c in columns) + " |" for r in rows]
    if seeds:
        lines[:0] = [f"Mean ± sample standard deviation over seeds {', '.join(seeds)}.", ""]
        lines += [
            "",
            "Per seed:",
            "",
            "| setting | seed | " + " | ".join(headers) + " |",
            "| --- | ---: |" + " ---: |" * len(columns),
        ]
        lines += [
            f"| {r['row']} | {s} | " + " | ".join(_fmt(r["per_seed"][s][c]) for c in columns) + " |"
            for r in rows
            for s in seeds
        ]
    write_text(out / "ablation.md", "\n".join(lines) + "\n")
    save_png(_chart(rows), out / "ablation.png")


def _fmt(v: object) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _csv(rows: list[dict[str, object]], seeds: list[str]) -> str:
    """Single seed: the rows as they are. Several: a line per row and seed, then its ``mean`` and ``std``."""
    buf = io.StringIO()
    base = tuple(k for k in BASE if any(k in r for r in rows))  # rule: not on the stage-1 row
    if not seeds:
        metrics = dict.fromkeys(k for r in rows for k in r if k not in BASE)
        writer = csv.DictWriter(buf, fieldnames=[*base, *metrics], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    metrics = list(rows[0]["per_seed"][seeds[0]])
    writer = csv.DictWriter(buf, fieldnames=[*base, "seed", *metrics], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        head = {k: r.get(k, "") for k in base}
        for s in seeds:
            writer.writerow({**head, "seed": s, **r["per_seed"][s]})
        writer.writerow({**head, "seed": "mean", **{m: r[m] for m in metrics}})
        writer.writerow({**head, "seed": "std", **{m: r[f"{m}_std"] for m in metrics}})
    return buf.getvalue()


def _chart(rows: list[dict[str, object]]) -> Figure:
    """Grouped bars per row (means over seeds, with ± one standard deviation as error bars)."""
    fig = Figure(figsize=(10, 3.8))
    ax = fig.subplots()
    width = 0.8 / len(COLUMNS)
    x = np.arange(len(rows))
    for j, col in enumerate(COLUMNS):
        std = [r.get(f"{col}_std") or 0 for r in rows]
        ax.bar(
            x + (j - (len(COLUMNS) - 1) / 2) * width,
            [r[col] or 0 for r in rows],
            width,
            label=col,
            yerr=std if any(std) else None,
            capsize=2,
            error_kw={"elinewidth": 0.8},
        )
    ax.set_xticks(x, [str(r["row"]) for r in rows], fontsize=8, rotation=12)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncols=len(COLUMNS), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return fig


def _track(rows: list[dict[str, object]], out: Path, dataset_path: str | Path, config: Config) -> None:
    from cplvad.tracking.runs import dataset_tags, mlflow_module, setup_mlflow

    mlflow = mlflow_module()
    experiment_id = setup_mlflow(config)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name="ablation", tags=dataset_tags(load_dataset(dataset_path))
    ):
        mlflow.log_params(config.flat())
        for r in rows:
            with mlflow.start_run(run_name=str(r["row"]), nested=True):
                mlflow.log_params(
                    {"stage2.supervision": r["supervision"], "car.enabled": r["car"]}
                    | ({"car.rule": r["rule"]} if "rule" in r else {})
                )
                metrics = {c: r[c] for c in (*COLUMNS, VALIDATION_COLUMN) if c in r}
                log_mean_std(metrics, {c: r.get(f"{c}_std") for c in metrics})
                for seed, values in r.get("per_seed", {}).items():
                    with mlflow.start_run(
                        run_name=f"{r['row']}, seed {seed}", nested=True, tags={"cplvad.seed": seed}
                    ):
                        mlflow.log_param("seed", seed)
                        mlflow.log_metrics(defined({c: values.get(c) for c in metrics}))
        for name in ("ablation.csv", "ablation.md", "ablation.png"):
            mlflow.log_artifact(str(out / name))


def track_ablation(
    rows: list[dict[str, object]], out: str | Path, dataset_path: str | Path, config: Config
) -> None:
    """Log ablation rows (as given to ``write_reports``) and the reports in ``out`` to MLflow: one parent
    run with a child run per row. For rows computed elsewhere, e.g. by parallel Kubeflow tasks."""
    _track(rows, Path(out), dataset_path, config)
