"""Evaluation: the published UCF-Crime / XD-Violence protocol (frame AUC/AP, fine-grained mAP)."""

from cplvad.eval.detection_map import IOU_THRESHOLDS, detection_map
from cplvad.eval.metrics import AUTHOR_KEYS, METRIC_KEYS, compute_metrics, configured_metrics, print_metrics
from cplvad.eval.predictions import Predictions, validate

__all__ = [
    "AUTHOR_KEYS",
    "IOU_THRESHOLDS",
    "METRIC_KEYS",
    "Predictions",
    "compute_metrics",
    "configured_metrics",
    "detection_map",
    "print_metrics",
    "validate",
]
