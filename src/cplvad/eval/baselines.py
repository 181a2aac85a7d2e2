"""Reference predictors for sanity checks: the oracle (ground truth itself) and a random scorer."""

from __future__ import annotations

import numpy as np

from cplvad.data.dataset import Dataset
from cplvad.eval.predictions import Predictions


def oracle_predictions(dataset: Dataset, lengths: np.ndarray) -> Predictions:
    """Scores equal to the ground truth: per snippet, the fraction of its frames that are annotated.

    Class probabilities put that fraction on the video's (first) anomaly class and the rest on normal.
    """
    gt = dataset.frame_ground_truth(lengths)
    fps = dataset.frames_per_snippet
    items, start = [], 0
    for video, t in zip(dataset.test, lengths.tolist(), strict=True):
        binary = gt[start * fps : (start + t) * fps].reshape(t, fps).mean(axis=1)
        start += t
        classes = np.zeros((t, len(dataset.classes)), dtype=np.float32)
        classes[:, 0] = 1.0 - binary
        if video.abnormal:
            classes[:, dataset.classes.index(video.classes[0])] += binary
        items.append((video.name, binary, classes))
    return Predictions.from_videos(items)


def random_predictions(dataset: Dataset, lengths: np.ndarray, seed: int = 0) -> Predictions:
    """Uniform anomaly scores and softmax-of-Gaussian class probabilities."""
    rng = np.random.default_rng(seed)
    items = []
    for video, t in zip(dataset.test, lengths.tolist(), strict=True):
        logits = rng.standard_normal((t, len(dataset.classes)))
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        items.append((video.name, rng.random(t), probs))
    return Predictions.from_videos(items)
