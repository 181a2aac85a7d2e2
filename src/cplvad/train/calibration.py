"""Decision threshold calibrated on normal training videos for a target false-alarm rate.

Scores of normal videos are anomaly-free by definition (video labels suffice), so the (1 - rate)
quantile of their snippet scores is the threshold that flags about ``rate`` of normal snippets. Their
histogram is kept too: the distribution ``cplvad monitor`` compares the scores of deployed sources with.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cplvad.data.dataset import Dataset
from cplvad.data.features import load_features
from cplvad.errors import DataError
from cplvad.eval.scoring import score_videos
from cplvad.modeling.factory import CALIBRATION_KEY, load_model, update_meta
from cplvad.monitor.histograms import score_histogram


def calibrate(
    model_dir: str | Path,
    dataset: Dataset,
    false_alarm_rate: float,
    device: torch.device,
    progress: bool = True,
) -> dict[str, float | int]:
    """Score every normal training video (first crop, full length) and store the threshold in meta.json."""
    model, _, _ = load_model(model_dir, device)
    normal = [v for v in dataset.train if not v.abnormal]
    if not normal:
        raise DataError(f"{dataset.train.path}: no normal training video to calibrate the threshold on")
    paths = [dataset.train.locate(v.rows[0]) for v in normal]

    def videos() -> Iterator[tuple[str, np.ndarray]]:
        for video, path in zip(normal, paths, strict=True):
            yield video.name, load_features(path, expected_dim=model.feature_dim)

    scores = np.concatenate(
        [
            b
            for _, b, _ in tqdm(
                score_videos(model, videos(), device),
                total=len(normal),
                desc="calibrating",
                unit="video",
                disable=not progress,
            )
        ]
    )
    result = {
        "threshold": float(np.quantile(scores, 1.0 - false_alarm_rate)),
        "false_alarm_rate": false_alarm_rate,
        "normal_videos": len(normal),
        "snippets": int(scores.size),
        "histogram": score_histogram(scores),  # the reference of `cplvad monitor` (drift)
    }
    update_meta(model_dir, **{CALIBRATION_KEY: result})
    return result
