"""All metrics of a predictions file: frame AUC/AP (both branches) and fine-grained mAP (the published
protocol), and optionally what the authors' test scripts would print (``author_protocol.*``)."""

from __future__ import annotations

import math
import warnings

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.ndimage import gaussian_filter, median_filter
from sklearn.metrics import average_precision_score, roc_auc_score

from cplvad.config import EvalConfig
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
AUTHOR_PREFIX = "author_protocol."
AUTHOR_KEYS = tuple(AUTHOR_PREFIX + k for k in METRIC_KEYS[:4])
"""Frame AUC/AP only: the authors' scripts compute mAP on unfiltered class probabilities (XD) or not at all."""


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


def frame_auc_ap(
    frame_gt: np.ndarray, snippet_scores: np.ndarray, frames_per_snippet: int
) -> tuple[float | None, float | None]:
    """Frame AUC and AP in percent (None when the ground truth holds a single class)."""
    frames = np.repeat(snippet_scores, frames_per_snippet)
    if len(np.unique(frame_gt)) < 2:
        warnings.warn("frame ground truth holds a single class; AUC/AP are undefined", stacklevel=2)
        return None, None
    return 100.0 * float(roc_auc_score(frame_gt, frames)), 100.0 * float(
        average_precision_score(frame_gt, frames)
    )


def compute_metrics(
    dataset: Dataset, pred: Predictions, smoothing: int = 0, author_script: str | None = None
) -> dict[str, float | None]:
    """Metrics of predictions already validated and ordered like the test list (see ``validate``).

    ``author_script`` (``ucf`` / ``xd``): also the ``author_protocol.*`` keys; the published keys are
    computed exactly as without it."""
    fps = dataset.frames_per_snippet
    frame_gt = dataset.frame_ground_truth(pred.lengths)
    binary = smooth_per_video(pred.binary, pred.lengths, smoothing)
    category = smooth_per_video(1.0 - pred.classes[:, 0], pred.lengths, smoothing)
    auc_b, ap_b = frame_auc_ap(frame_gt, binary, fps)
    auc_c, ap_c = frame_auc_ap(frame_gt, category, fps)
    per_video = [c for _, _, c in pred.videos()]
    maps = detection_map(
        per_video, dataset.segment_ground_truth(pred.lengths), dataset.classes, IOU_THRESHOLDS, fps
    )
    metrics: dict[str, float | None] = {
        "frame_auc_binary": auc_b,
        "frame_ap_binary": ap_b,
        "frame_auc_category": auc_c,
        "frame_ap_category": ap_c,
    }
    metrics.update({f"map_iou_{t}": v for t, v in maps.items()})
    metrics["map_avg"] = float(np.mean(list(maps.values())))
    if author_script is not None:
        metrics.update(author_protocol(frame_gt, pred, fps, author_script))
    return {k: (None if v is None or math.isnan(v) else round(v, 4)) for k, v in metrics.items()}


def configured_metrics(dataset: Dataset, pred: Predictions, cfg: EvalConfig) -> dict[str, float | None]:
    """``compute_metrics`` with the ``eval`` section's settings."""
    return compute_metrics(
        dataset,
        pred,
        smoothing=cfg.smoothing,
        author_script=cfg.author_script if cfg.report_author_protocol else None,
    )


def _median_then_gaussian(s: np.ndarray) -> np.ndarray:
    """The authors' ``postprocess``: median filter of width 5, then a Gaussian of sigma 3 (scipy defaults:
    reflecting borders, truncated at 4 sigma), each only above a minimum length."""
    s = np.asarray(s, dtype=np.float64)
    if len(s) >= 5:
        s = median_filter(s, size=5)
    if len(s) > 3:
        s = gaussian_filter(s, sigma=3.0, mode="reflect")
    return s


def author_protocol(
    frame_gt: np.ndarray, pred: Predictions, fps: int, script: str
) -> dict[str, float | None]:
    """Frame AUC/AP as the authors' test scripts compute them (eastbrother87/CPLVAD, test_ucf.py and
    test_xd.py): the snippet scores of all test videos are concatenated in list order and filtered as one
    sequence, so every filter runs across video boundaries. ``ucf``: the binary score goes through a
    sigmoid again (their model already returns probabilities), then median 5 + Gaussian 3; the category
    score (1 - P[normal]) gets a Gaussian of sigma 3 only. ``xd``: both scores median 5 + Gaussian 3."""
    binary = pred.binary.astype(np.float64)
    category = 1.0 - pred.classes[:, 0].astype(np.float64)
    if script == "ucf":
        binary = _median_then_gaussian(1.0 / (1.0 + np.exp(-binary)))
        category = gaussian_filter(category, sigma=3.0)
    elif script == "xd":
        binary, category = _median_then_gaussian(binary), _median_then_gaussian(category)
    else:
        raise ValueError(f"unknown author script {script!r} (expected 'ucf' or 'xd')")
    auc_b, ap_b = frame_auc_ap(frame_gt, binary, fps)
    auc_c, ap_c = frame_auc_ap(frame_gt, category, fps)
    return dict(zip(AUTHOR_KEYS, (auc_b, ap_b, auc_c, ap_c), strict=True))


def metrics_table(metrics: dict[str, float | None], title: str = "metrics") -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value (%)", justify="right")
    for key, value in metrics.items():
        table.add_row(key, "n/a" if value is None else f"{value:.2f}")
    return table


def print_metrics(
    metrics: dict[str, float | None], title: str = "metrics", console: Console | None = None
) -> None:
    (console or Console()).print(metrics_table(metrics, title))
