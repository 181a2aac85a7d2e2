"""All metrics of a predictions file: frame AUC/AP (both branches) and fine-grained mAP."""

from __future__ import annotations

import math
import warnings

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.metrics import average_precision_score, roc_auc_score

from cplvad.data.dataset import Dataset
from cplvad.eval.detection_map import IOU_THRESHOLDS, detection_map
from cplvad.eval.predictions import Predictions

METRIC_KEYS = (
    "frame_auc_binary",
    "frame_ap_binary",
    "frame_auc_category",
    "frame_ap_category",
    *(f"map_iou_{t}" for t in IOU_THRESHOLDS),
    "map_avg",
)


def smooth_per_video(scores: np.ndarray, lengths: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of width ``window`` inside each video (never across video boundaries)."""
    if window <= 1:
        return scores
    out = np.empty_like(scores)
    kernel = np.ones(window) / window
    start = 0
    for t in lengths.tolist():
        seg = scores[start : start + t]
        padded = np.pad(seg, (window // 2, window - 1 - window // 2), mode="edge")
        out[start : start + t] = np.convolve(padded, kernel, mode="valid")
        start += t
    return out


def frame_auc_ap(frame_gt: np.ndarray, snippet_scores: np.ndarray, frames_per_snippet: int) -> tuple[float | None, float | None]:
    """Frame AUC and AP in percent (None when the ground truth holds a single class)."""
    frames = np.repeat(snippet_scores, frames_per_snippet)
    if len(np.unique(frame_gt)) < 2:
        warnings.warn("frame ground truth holds a single class; AUC/AP are undefined", stacklevel=2)
        return None, None
    return 100.0 * float(roc_auc_score(frame_gt, frames)), 100.0 * float(average_precision_score(frame_gt, frames))


def compute_metrics(dataset: Dataset, pred: Predictions, smoothing: int = 0) -> dict[str, float | None]:
    """Metrics of predictions already validated and ordered like the test list (see ``validate``)."""
    fps = dataset.frames_per_snippet
    frame_gt = dataset.frame_ground_truth(pred.lengths)
    binary = smooth_per_video(pred.binary, pred.lengths, smoothing)
    category = smooth_per_video(1.0 - pred.classes[:, 0], pred.lengths, smoothing)
    auc_b, ap_b = frame_auc_ap(frame_gt, binary, fps)
    auc_c, ap_c = frame_auc_ap(frame_gt, category, fps)
    per_video = [c for _, _, c in pred.videos()]
    maps = detection_map(per_video, dataset.segment_ground_truth(pred.lengths), dataset.classes, IOU_THRESHOLDS, fps)
    metrics: dict[str, float | None] = {
        "frame_auc_binary": auc_b,
        "frame_ap_binary": ap_b,
        "frame_auc_category": auc_c,
        "frame_ap_category": ap_c,
    }
    metrics.update({f"map_iou_{t}": v for t, v in maps.items()})
    metrics["map_avg"] = float(np.mean(list(maps.values())))
    return {k: (None if v is None or math.isnan(v) else round(v, 4)) for k, v in metrics.items()}


def metrics_table(metrics: dict[str, float | None], title: str = "metrics") -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value (%)", justify="right")
    for key, value in metrics.items():
        table.add_row(key, "n/a" if value is None else f"{value:.2f}")
    return table


def print_metrics(metrics: dict[str, float | None], title: str = "metrics", console: Console | None = None) -> None:
    (console or Console()).print(metrics_table(metrics, title))
