"""The paper's Table 3 grid on one dataset: stage 1; B->C; C->B; self; cross without CAR; cross with CAR.

All rows share one stage-1 model and its pseudo labels (with and without CAR); each row is a stage-2
training and an evaluation. Written as ablation.csv, ablation.md and a bar chart (ablation.png); with
tracking on, one parent MLflow run holds a child run per row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cplvad import preflight
from cplvad.config import Config
from cplvad.data.dataset import load_dataset
from cplvad.eval.plots import save_png
from cplvad.io import write_text
from cplvad.workflow import evaluate, make_pseudo_labels, train_stage


@dataclass(frozen=True)
class Row:
    label: str
    supervision: str | None
    """stage2.supervision, or None for the stage-1 row."""
    car: bool

    @property
    def slug(self) -> str:
        return "stage1" if self.supervision is None else f"{self.supervision}{'' if self.car else '_nocar'}"


GRID = (
    Row("stage 1 (no pseudo labels)", None, True),
    Row("B -> C", "b_to_c", True),
    Row("C -> B", "c_to_b", True),
    Row("self", "self", True),
    Row("cross, CAR off", "cross", False),
    Row("cross, CAR on (CPL-VAD)", "cross", True),
)
COLUMNS = ("frame_auc_binary", "frame_ap_binary", "frame_auc_category", "frame_ap_category", "map_avg")


def run_ablation(
    dataset_path: str | Path, out_dir: str | Path, config: Config, progress: bool = True, track: bool = True
) -> list[dict[str, object]]:
    preflight.for_training_run(load_dataset(dataset_path), out_dir, config, track=track)
    out = Path(out_dir)
    rows: list[dict[str, object]] = []
    stage1 = out / "stage1"
    train_stage(dataset_path, stage1, config, stage=1, progress=progress)
    pseudo = {}
    for car in (True, False):
        cfg = config.model_copy(update={"car": config.car.model_copy(update={"enabled": car})})
        pseudo[car] = out / f"pseudo{'' if car else '_nocar'}.npz"
        make_pseudo_labels(dataset_path, stage1, cfg, out=pseudo[car], progress=progress)
    for row in GRID:
        if row.supervision is None:
            model_dir = stage1
        else:
            cfg = config.model_copy(update={"stage2": config.stage2.model_copy(update={"supervision": row.supervision})})
            model_dir = out / row.slug
            train_stage(dataset_path, model_dir, cfg, stage=2, pseudo_path=pseudo[row.car], progress=progress)
        metrics = evaluate(dataset_path, model_dir, config, metrics_out=model_dir / "metrics.json", progress=progress).metrics
        rows.append({"row": row.label, "supervision": row.supervision or "none", "car": row.car, **metrics})
    write_reports(rows, out)
    if track:
        _track(rows, out, dataset_path, config)
    return rows


def write_reports(rows: list[dict[str, object]], out: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "ablation.csv", buf.getvalue())

    def fmt(v: object) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    lines = ["| setting | frame AUC (B) | frame AP (B) | frame AUC (C) | frame AP (C) | mAP avg |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['row']} | " + " | ".join(fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    write_text(out / "ablation.md", "\n".join(lines) + "\n")

    fig = Figure(figsize=(10, 3.8))
    ax = fig.subplots()
    width = 0.8 / len(COLUMNS)
    x = np.arange(len(rows))
    for j, col in enumerate(COLUMNS):
        ax.bar(x + (j - (len(COLUMNS) - 1) / 2) * width, [r[col] or 0 for r in rows], width, label=col)
    ax.set_xticks(x, [str(r["row"]) for r in rows], fontsize=8, rotation=12)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncols=len(COLUMNS), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    save_png(fig, out / "ablation.png")


def _track(rows: list[dict[str, object]], out: Path, dataset_path: str | Path, config: Config) -> None:
    import mlflow

    from cplvad.tracking.runs import dataset_checksum, setup_mlflow

    dataset = load_dataset(dataset_path)
    experiment_id = setup_mlflow(config)
    tags = {"cplvad.dataset": dataset.name, "cplvad.data_checksum": dataset_checksum(dataset)}
    with mlflow.start_run(experiment_id=experiment_id, run_name="ablation", tags=tags):
        mlflow.log_params(config.flat())
        for r in rows:
            with mlflow.start_run(run_name=str(r["row"]), nested=True):
                mlflow.log_params({"stage2.supervision": r["supervision"], "car.enabled": r["car"]})
                mlflow.log_metrics({c: float(r[c]) for c in COLUMNS if r[c] is not None})
        for name in ("ablation.csv", "ablation.md", "ablation.png"):
            mlflow.log_artifact(str(out / name))


def track_ablation(rows: list[dict[str, object]], out: str | Path, dataset_path: str | Path, config: Config) -> None:
    """Log ablation rows (as given to ``write_reports``) and the reports in ``out`` to MLflow: one parent
    run with a child run per row. For rows computed elsewhere, e.g. by parallel Kubeflow tasks."""
    _track(rows, Path(out), dataset_path, config)
