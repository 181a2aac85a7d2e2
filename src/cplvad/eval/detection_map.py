"""Fine-grained mAP@IoU of the published UCF-Crime / XD-Violence evaluation (VadCLIP, Wu et al. 2024).

Reproduced on purpose with its quirks so numbers are comparable with the literature:
frame-level class probabilities (snippets repeated 16x); class score = mean of the top floor(frames/16)
values; proposals = runs above max - 0.6 (max - min) of at least 2 frames, scored max + 0.7 class score;
NMS at 0.6 per video and class; global ranking; greedy matching to the best unmatched GT segment with
IoU >= threshold (over integer frame sets); AP = sum of precision at hits / #GT; mean over ALL classes,
normal included; a class without any proposal makes that IoU's mAP 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cplvad.data.ground_truth import GTSegment
from cplvad.data.labels import ClassList

IOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
PROPOSAL_RANGE = 0.6
"""A frame joins a proposal when its score exceeds max - 0.6 (max - min) of its video."""
CLASS_SCORE_WEIGHT = 0.7
MIN_PROPOSAL_FRAMES = 2
NMS_IOU = 0.6


@dataclass(frozen=True)
class Proposal:
    video: int
    start: int
    end: int
    score: float


def class_scores(frame_probs: np.ndarray) -> np.ndarray:
    """Per class, the mean of the top floor(frames / 16) frame probabilities of a video."""
    top = -np.sort(-frame_probs, axis=0)
    return np.mean(top[: int(frame_probs.shape[0] / 16), :], axis=0)


def runs_above(values: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Starts and (exclusive) ends of the maximal runs where values > threshold."""
    padded = np.concatenate([[0], (values > threshold).astype(np.int8), [0]])
    diff = np.diff(padded)
    return np.flatnonzero(diff == 1), np.flatnonzero(diff == -1)


def interval_iou(s1: float, e1: float, s2: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """IoU of [s1, e1) with each [s2, e2) as continuous intervals (the NMS overlap)."""
    inter = np.maximum(0.0, np.minimum(e1, e2) - np.maximum(s1, s2))
    return inter / ((e1 - s1) + (e2 - s2) - inter)


def nms(starts: np.ndarray, ends: np.ndarray, threshold: float = NMS_IOU) -> list[int]:
    """Indices kept by greedy NMS over proposals already sorted by decreasing score."""
    order = np.arange(len(starts))
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        overlap = interval_iou(starts[i], ends[i], starts[rest], ends[rest])
        order = rest[overlap <= threshold]
    return keep


def frame_set_iou(s1: int, e1: int, s2: int, e2: int) -> float:
    """IoU of the integer frame sets range(s1, e1) and range(s2, e2)."""
    len1, len2 = max(0, e1 - s1), max(0, e2 - s2)
    inter = max(0, min(e1, e2) - max(s1, s2))
    union = len1 + len2 - inter
    return inter / union if union else 0.0


def video_proposals(frame_probs: np.ndarray, c_score: float, video: int) -> list[Proposal]:
    """Proposals of one video and class after per-video NMS, best first."""
    top, bottom = np.max(frame_probs), np.min(frame_probs)
    starts, ends = runs_above(frame_probs, top - (top - bottom) * PROPOSAL_RANGE)
    long_enough = ends - starts >= MIN_PROPOSAL_FRAMES
    starts, ends = starts[long_enough], ends[long_enough]
    if not len(starts):
        return []
    run_max = np.array([frame_probs[s:e].max() for s, e in zip(starts, ends, strict=True)])
    # float32 arithmetic, then float64 ranking, as in the published code
    scores = (run_max + CLASS_SCORE_WEIGHT * c_score).astype(np.float64)
    order = np.argsort(-scores)
    starts, ends, scores = starts[order], ends[order], scores[order]
    keep = nms(starts.astype(np.float64), ends.astype(np.float64))
    return [Proposal(video, int(starts[k]), int(ends[k]), float(scores[k])) for k in keep]


def average_precision(
    proposals: Sequence[Proposal], gt_by_video: dict[int, list[tuple[int, int]]], iou_threshold: float
) -> float:
    """AP of globally ranked proposals against GT segments of one class (greedy best-IoU matching)."""
    n_gt = sum(len(v) for v in gt_by_video.values())
    scores = np.array([p.score for p in proposals], dtype=np.float64)
    ranked = [proposals[i] for i in np.argsort(-scores)]
    remaining = {v: list(segs) for v, segs in gt_by_video.items()}
    tp = np.zeros(len(ranked))
    for rank, prop in enumerate(ranked):
        candidates = remaining.get(prop.video, [])
        best_iou, best_j = 0.0, -1
        for j, (gs, ge) in enumerate(candidates):
            iou = frame_set_iou(gs, ge, prop.start, prop.end)
            if iou >= iou_threshold and iou > best_iou:
                best_iou, best_j = iou, j
        if best_j >= 0:
            del candidates[best_j]
            tp[rank] = 1.0
    if tp.sum() == 0:
        return 0.0
    precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    return float(np.sum(precision * tp) / n_gt)


def detection_map(
    snippet_probs: Sequence[np.ndarray],
    gt_segments: Sequence[Sequence[GTSegment]],
    classes: ClassList,
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
    frames_per_snippet: int = 16,
) -> dict[float, float]:
    """mAP (percent) per IoU threshold.

    ``snippet_probs``: per test video (in list order), its (T, M) class probabilities.
    ``gt_segments``: per video, its GT segments; labels resolve through the class list (names or codes),
    a label that resolves to no class (UCF's normal ``A``) never matches.
    """
    m = len(classes)
    frame_probs = [
        np.repeat(np.asarray(p, dtype=np.float32), frames_per_snippet, axis=0) for p in snippet_probs
    ]
    c_scores = [class_scores(p) for p in frame_probs]
    frame_probs = [p * (c > 0.0) for p, c in zip(frame_probs, c_scores, strict=True)]

    per_class_props: list[list[Proposal]] = []
    per_class_gt: list[dict[int, list[tuple[int, int]]]] = []
    for c in range(m):
        props = [
            prop for i, p in enumerate(frame_probs) for prop in video_proposals(p[:, c], c_scores[i][c], i)
        ]
        per_class_props.append(props)
        gt: dict[int, list[tuple[int, int]]] = {}
        for i, segs in enumerate(gt_segments):
            for s in segs:
                if classes.resolve(s.label) == classes.names[c]:
                    gt.setdefault(i, []).append((int(s.start), int(s.end)))
        per_class_gt.append(gt)

    result: dict[float, float] = {}
    for th in iou_thresholds:
        if any(not props for props in per_class_props):
            result[th] = 0.0
            continue
        aps = [average_precision(per_class_props[c], per_class_gt[c], th) for c in range(m)]
        result[th] = 100.0 * float(np.mean(aps))
    return result
