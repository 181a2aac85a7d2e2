"""The order in which the training loop visits the samples: one epoch of index batches, balanced or not."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def steps_per_epoch(abnormal: torch.Tensor, batch_size: int, balanced: bool) -> int:
    """How many batches ``batches`` yields per epoch (the same every epoch)."""
    if not balanced:
        return -(-len(abnormal) // batch_size)
    n_abnormal = int(abnormal.sum())
    return -(-max(n_abnormal, len(abnormal) - n_abnormal) // (batch_size // 2))


def batches(
    abnormal: torch.Tensor, batch_size: int, balanced: bool, rng: np.random.Generator
) -> Iterator[torch.Tensor]:
    """One epoch of sample indices.

    Balanced: each batch holds batch_size/2 abnormal and batch_size/2 normal samples; the epoch covers the
    larger group once and cycles through reshuffled copies of the smaller one.
    """
    ab = np.flatnonzero(abnormal.numpy())
    no = np.flatnonzero(~abnormal.numpy())
    if not balanced:
        order = rng.permutation(len(abnormal))
        for i in range(0, len(order), batch_size):
            yield torch.from_numpy(order[i : i + batch_size])
        return
    half = batch_size // 2
    steps = steps_per_epoch(abnormal, batch_size, balanced)

    def stream(group: np.ndarray) -> np.ndarray:
        reps = -(-steps * half // len(group))
        return np.concatenate([rng.permutation(group) for _ in range(reps)])[: steps * half]

    a, b = stream(ab), stream(no)
    for i in range(steps):
        yield torch.from_numpy(np.concatenate([a[i * half : (i + 1) * half], b[i * half : (i + 1) * half]]))
