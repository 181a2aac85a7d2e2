"""Training samples: every crop of every training video, resampled to n snippets, held in memory.

Holding the (N, n, D) views in one tensor keeps the training loop free of I/O (1,610 UCF videos x 10
crops x 192 x 512 float32 is 6.3 GB; the demo data is a few MB).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from cplvad.data.dataset import Dataset, FeatureList
from cplvad.data.features import load_features, resample
from cplvad.data.labels import ClassList
from cplvad.errors import DataError


@dataclass
class TrainingSet:
    features: torch.Tensor
    """(N, n, D) float32 resampled views."""
    lengths: torch.Tensor
    """(N,) valid snippets of each view (<= n)."""
    labels: torch.Tensor
    """(N, M) multi-hot class labels."""
    abnormal: torch.Tensor
    """(N,) bool."""
    keys: list[str]
    """``video__crop`` of each sample, to match pseudo labels to samples."""
    videos: list[str] = field(default_factory=list)
    """The video of each sample: its crops belong together (e.g. in a validation split)."""

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[2])

    def masks(self, idx: torch.Tensor) -> torch.Tensor:
        n = self.features.shape[1]
        return torch.arange(n)[None, :] < self.lengths[idx][:, None]

    @property
    def sample_videos(self) -> list[str]:
        """The video of each sample (for a set built without video names, each sample is its own video)."""
        return self.videos or self.keys

    @property
    def video_count(self) -> int:
        return len(set(self.sample_videos))

    def subset(self, idx: torch.Tensor) -> TrainingSet:
        """The samples at ``idx``, in that order."""
        pick = idx.tolist()
        return TrainingSet(
            self.features[idx],
            self.lengths[idx],
            self.labels[idx],
            self.abnormal[idx],
            [self.keys[i] for i in pick],
            [self.videos[i] for i in pick] if self.videos else [],
        )

    def check_trainable(self, source: str) -> None:
        n_abnormal = int(self.abnormal.sum())
        if n_abnormal == 0 or n_abnormal == len(self):
            missing = "abnormal" if n_abnormal == 0 else "normal"
            raise DataError(
                f"{source}: the training list has no {missing} video; weak supervision needs both normal and "
                "abnormal videos"
            )


def sample_key(video: str, crop: int | None) -> str:
    return f"{video}__{crop}" if crop is not None else video


def load_training_set(dataset: Dataset, n: int, progress: bool = True) -> TrainingSet:
    """Read and resample every training crop (memory-mapped reads, one file at a time)."""
    ts = read_samples(dataset.train, dataset.classes, n, progress)
    ts.check_trainable(str(dataset.train.path))
    return ts


def read_samples(
    rows: FeatureList, classes: ClassList, n: int, progress: bool = True, expected_dim: int | None = None
) -> TrainingSet:
    """Every crop of a list, read and resampled to ``n`` snippets (of width ``expected_dim`` when given)."""
    samples = rows.samples()  # locates every file first: a missing one fails before any reading
    feats, lengths, labels, abnormal, keys, videos = [], [], [], [], [], []
    dim = expected_dim
    for video_idx, row, path in tqdm(
        samples, desc=f"loading {rows.split} features", unit="crop", disable=not progress
    ):
        video = rows.videos[video_idx]
        arr = load_features(path, expected_dim=dim)
        dim = arr.shape[1]
        view, valid = resample(arr, n)
        feats.append(view)
        lengths.append(valid)
        labels.append(classes.multi_hot(video.classes))
        abnormal.append(video.abnormal)
        keys.append(sample_key(video.name, row.crop))
        videos.append(video.name)
    return TrainingSet(
        features=torch.from_numpy(np.stack(feats)),
        lengths=torch.tensor(lengths, dtype=torch.long),
        labels=torch.from_numpy(np.stack(labels)),
        abnormal=torch.tensor(abnormal, dtype=torch.bool),
        keys=keys,
        videos=videos,
    )
