"""``data.feedback``: the training set of both stages is the dataset's training list plus the feedback samples.

The samples come after the dataset's, in the folder's order, so stage 1, the pseudo labels and stage 2 see
the same set (pseudo labels are matched to samples by key); the trained model's fingerprint covers them, so
new feedback means a new model. Calibration stays on the dataset's normal training videos.
"""

from __future__ import annotations

import torch

from cplvad.config import Config
from cplvad.data.dataset import Dataset
from cplvad.data.training_set import TrainingSet, load_training_set, read_samples, sample_key
from cplvad.errors import DataError
from cplvad.feedback.folder import feedback_list


def training_set(dataset: Dataset, config: Config, n: int, progress: bool = True) -> TrainingSet:
    """The dataset's training samples, then those of ``config.data.feedback`` (if set), resampled to ``n``."""
    data = load_training_set(dataset, n, progress)
    folder = config.data.feedback
    rows = feedback_list(folder, dataset.classes) if folder is not None else None
    if rows is None:
        return data
    extra = repeated(
        read_samples(rows, dataset.classes, n, progress, expected_dim=data.feature_dim),
        config.data.feedback_repeat,
    )
    clash = sorted(set(data.keys) & set(extra.keys))
    if clash:
        raise DataError(
            f"feedback samples {clash[:3]} of {folder} have the names of training samples of "
            f"{dataset.train.path}; rename those training videos or drop the feedback"
        )
    return TrainingSet(
        torch.cat([data.features, extra.features]),
        torch.cat([data.lengths, extra.lengths]),
        torch.cat([data.labels, extra.labels]),
        torch.cat([data.abnormal, extra.abnormal]),
        data.keys + extra.keys,
        data.videos + extra.videos,
    )


def repeated(samples: TrainingSet, copies: int) -> TrainingSet:
    """Each sample ``copies`` times in a row, copy k keyed as crop k of its video (keys stay unique)."""
    if copies == 1:
        return samples
    index = torch.arange(len(samples)).repeat_interleave(copies)
    out = samples.subset(index)
    out.keys = [sample_key(video, k % copies) for k, video in enumerate(out.videos)]
    return out
