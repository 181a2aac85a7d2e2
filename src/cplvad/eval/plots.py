"""Plot data and figures of an evaluation: ROC and PR curves (CSV per branch, for ``dvc plots``) and score
timelines (CSV and PNG).

The curve CSVs are thinned to at most ``MAX_POINTS`` rows per branch so they stay small in git/DVC.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from cplvad.data.dataset import Dataset
from cplvad.eval.predictions import Predictions
from cplvad.io import write_text
from cplvad.storage.atomic import atomic_path

MAX_POINTS = 400
TIMELINE_VIDEOS = 6


def _thin(rows: np.ndarray) -> np.ndarray:
    if len(rows) <= MAX_POINTS:
        return rows
    keep = np.unique(np.linspace(0, len(rows) - 1, MAX_POINTS).astype(int))
    return rows[keep]


def _csv(header: list[str], rows: list[list[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def save_png(fig: Figure, path: str | Path, **savefig: object) -> Path:
    """Write a figure as a PNG, atomically (110 dpi unless ``savefig`` says otherwise)."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, **{"dpi": 110, **savefig})
    return Path(path)


def curve_rows(frame_gt: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thinned ROC points (fpr, tpr) and PR points (recall, precision) of one scoring branch."""
    fpr, tpr, _ = roc_curve(frame_gt, scores)
    precision, recall, _ = precision_recall_curve(frame_gt, scores)
    return _thin(np.stack([fpr, tpr], 1)), _thin(np.stack([recall[::-1], precision[::-1]], 1))


def draw_scores(
    ax: Axes, binary: np.ndarray, classes: np.ndarray, frames_per_snippet: int, scale: float = 1.0
) -> None:
    """Anomaly score of both branches (binary; category = 1 - P[normal]) as steps over each snippet's
    frames, on x = frame * ``scale`` (1 / fps for seconds)."""
    edges = np.arange(len(binary) + 1) * (frames_per_snippet * scale)
    ax.stairs(binary, edges, baseline=None, color="tab:blue", lw=1.2, label="binary")
    ax.stairs(1 - classes[:, 0], edges, baseline=None, color="tab:orange", lw=1.0, ls="--", label="category")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, edges[-1])


def timeline_figure(dataset: Dataset, pred: Predictions, frame_gt: np.ndarray, videos: list[int]) -> Figure:
    """One panel per video: anomaly score of both branches over frames, annotated anomalies shaded."""
    fps = dataset.frames_per_snippet
    offsets = pred.offsets * fps
    per_video = list(pred.videos())
    fig = Figure(figsize=(9, 1.7 * len(videos)))
    axes = fig.subplots(len(videos), 1, squeeze=False, sharey=True)
    for ax, i in zip(axes[:, 0], videos, strict=True):
        name, binary, classes = per_video[i]
        frames = np.arange(len(binary) * fps)
        gt = frame_gt[offsets[i] : offsets[i + 1]]
        ax.fill_between(frames, 0, gt, step="post", color="tab:red", alpha=0.15, lw=0, label="annotated")
        draw_scores(ax, binary, classes, fps)
        ax.set_title(
            f"{name} ({dataset.test.videos[dataset.test.index[name]].label})", fontsize=9, loc="left"
        )
        ax.set_ylabel("score", fontsize=8)
    axes[0, 0].legend(loc="upper right", fontsize=7, ncols=3)
    axes[-1, 0].set_xlabel("frame")
    fig.tight_layout()
    return fig


def pick_timeline_videos(dataset: Dataset, count: int = TIMELINE_VIDEOS) -> list[int]:
    """Mostly abnormal test videos (what people look at first) plus a normal one, in list order."""
    abnormal = [i for i, v in enumerate(dataset.test) if v.abnormal]
    normal = [i for i, v in enumerate(dataset.test) if not v.abnormal]
    return sorted(abnormal[: count - 1] + normal[:1])


def write_plots(dataset: Dataset, pred: Predictions, frame_gt: np.ndarray, out_dir: str | Path) -> list[Path]:
    """roc.csv, pr.csv, timeline.csv and timelines.png in ``out_dir`` (validated, list-ordered predictions)."""
    out = Path(out_dir)
    fps = dataset.frames_per_snippet
    scores = {"binary": np.repeat(pred.binary, fps), "category": np.repeat(1 - pred.classes[:, 0], fps)}
    written = []
    if len(np.unique(frame_gt)) > 1:  # one file per branch and curve, the shape `dvc plots` draws as lines
        for branch, s in scores.items():
            roc, pr = curve_rows(frame_gt, s)
            write_text(out / f"roc_{branch}.csv", _csv(["fpr", "tpr"], np.round(roc, 5).tolist()))
            write_text(out / f"pr_{branch}.csv", _csv(["recall", "precision"], np.round(pr, 5).tolist()))
            written += [out / f"roc_{branch}.csv", out / f"pr_{branch}.csv"]
    videos = pick_timeline_videos(dataset)
    rows = []
    per_video = list(pred.videos())
    for i in videos:
        name, binary, classes = per_video[i]
        gt = frame_gt[pred.offsets[i] * fps : pred.offsets[i + 1] * fps].reshape(-1, fps).max(axis=1)
        for t in range(len(binary)):
            rows.append([name, t, round(float(binary[t]), 5), round(float(1 - classes[t, 0]), 5), int(gt[t])])
    write_text(out / "timeline.csv", _csv(["video", "snippet", "binary", "category", "annotated"], rows))
    save_png(timeline_figure(dataset, pred, frame_gt, videos), out / "timelines.png")
    return [*written, out / "timeline.csv", out / "timelines.png"]
