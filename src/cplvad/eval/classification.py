"""The binary branch as a frame classifier: its ROC curve and the confusion matrix at the model's calibrated
threshold, the shapes of a Kubeflow ``ClassificationMetrics`` artifact (the evaluate step logs them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, roc_curve

from cplvad.data.dataset import load_dataset
from cplvad.eval.plots import MAX_POINTS
from cplvad.eval.predictions import Predictions
from cplvad.modeling.factory import CALIBRATION_KEY, read_model_config

CATEGORIES = ["normal", "anomalous"]


@dataclass
class FrameClassification:
    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]
    """ROC points (at most ``MAX_POINTS``, each with the score threshold that gives it); empty when the test
    frames hold one class only."""
    threshold: float | None
    """The calibrated threshold (None: the model has none, and there is no confusion matrix)."""
    matrix: list[list[int]]
    """Frames by true class (rows, ``CATEGORIES``) and predicted class (columns) at ``threshold``."""


def frame_classification(
    dataset_path: str | Path, predictions: Predictions, model_dir: str | Path
) -> FrameClassification:
    """ROC and confusion matrix of the anomaly score on the test frames (each snippet's score for its 16
    frames, as the published protocol scores them)."""
    dataset = load_dataset(dataset_path)
    frame_gt = dataset.frame_ground_truth(predictions.lengths).astype(bool)
    scores = np.repeat(predictions.binary, dataset.frames_per_snippet)
    fpr, tpr, thresholds = ([], [], [])
    if len(np.unique(frame_gt)) > 1:
        f, t, th = roc_curve(frame_gt, scores)
        th = np.minimum(th, 1.0)  # sklearn starts at +inf; a probability never exceeds 1
        keep = np.unique(np.linspace(0, len(f) - 1, min(len(f), MAX_POINTS)).astype(int))
        fpr, tpr, thresholds = (np.round(a[keep], 6).tolist() for a in (f, t, th))
    _, meta = read_model_config(model_dir)
    threshold = (meta.extra.get(CALIBRATION_KEY) or {}).get("threshold")
    matrix: list[list[int]] = []
    if threshold is not None:
        matrix = confusion_matrix(frame_gt, scores >= threshold, labels=[False, True]).tolist()
    return FrameClassification(fpr, tpr, thresholds, threshold, matrix)
