"""Scoring: videos are cut into chunks of n snippets, batched across videos, and every level is upsampled to
the chunk and the levels averaged (``model.fusion``, from ``eval.level_fusion`` / ``eval.level_upsampling``):
by default the paper's mean of linearly upsampled logits, then sigmoid / softmax; the release's mean of
the B branch's step-upsampled sigmoid probabilities on request."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from cplvad.data.dataset import Dataset
from cplvad.data.features import chunk, load_features
from cplvad.eval.predictions import Predictions
from cplvad.modeling.dual_branch import CPLVAD, LevelFusion, LevelOutputs, repeat_levels, upsample_levels


@torch.no_grad()
def score_chunks(model: CPLVAD, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, n, D) chunks with valid lengths (B,) -> anomaly probabilities (B, n) and class probabilities (B, n, M)."""
    n = x.shape[1]
    mask = torch.arange(n, device=x.device)[None, :] < lengths[:, None]
    return fuse_levels(model(x, mask), n, model.fusion)


def fuse_levels(out: LevelOutputs, n: int, fusion: LevelFusion) -> tuple[torch.Tensor, torch.Tensor]:
    """A chunk's levels -> anomaly probabilities (B, n) and class probabilities (B, n, M).

    ``logits``: sigmoid of the mean B logit; ``probabilities``: mean of the B levels' sigmoids. The C
    branch averages its logits, then the softmax, either way (the paper and the release agree there)."""

    def upsampled(values: torch.Tensor) -> torch.Tensor:
        if fusion.upsampling == "repeat":
            return repeat_levels(values, n)
        return upsample_levels(values, out.mask, n)

    binary = upsampled(out.binary.float())
    binary = (
        torch.sigmoid(binary).mean(dim=1)
        if fusion.average == "probabilities"
        else torch.sigmoid(binary.mean(dim=1))
    )
    return binary, torch.softmax(upsampled(out.classes.float()).mean(dim=1), dim=-1)


def score_videos(
    model: CPLVAD,
    videos: Iterable[tuple[str, np.ndarray]],
    device: torch.device,
    batch_size: int = 64,
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, (T, D) features) -> (name, binary (T,), classes (T, M)), batching chunks across videos."""
    model.eval().to(device)
    n = model.cfg.max_len
    pending: list[tuple[str, int]] = []  # (name, number of chunks)
    chunks: list[np.ndarray] = []
    lengths: list[np.ndarray] = []

    def flush() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        x = torch.from_numpy(np.concatenate(chunks)).to(device)
        lens = torch.from_numpy(np.concatenate(lengths)).to(device)
        b_parts, c_parts = [], []
        for s in range(0, len(x), batch_size):
            b, c = score_chunks(model, x[s : s + batch_size], lens[s : s + batch_size])
            b_parts.append(b.cpu())
            c_parts.append(c.cpu())
        b_all, c_all = torch.cat(b_parts).numpy(), torch.cat(c_parts).numpy()
        lens_np = lens.cpu().numpy()
        offset = 0
        for name, k in pending:
            valid = lens_np[offset : offset + k]
            b = np.concatenate([b_all[offset + i, : valid[i]] for i in range(k)])
            c = np.concatenate([c_all[offset + i, : valid[i]] for i in range(k)])
            offset += k
            yield name, b, c

    for name, feats in videos:
        ch, ln = chunk(feats, n)
        pending.append((name, len(ch)))
        chunks.append(ch)
        lengths.append(ln)
        if sum(len(c) for c in chunks) >= batch_size:
            yield from flush()
            pending, chunks, lengths = [], [], []
    if pending:
        yield from flush()


def predict_test_set(
    model: CPLVAD, dataset: Dataset, device: torch.device, batch_size: int = 64, progress: bool = True
) -> Predictions:
    """Predictions for every test video of a dataset, in test-list order."""
    test = dataset.test
    paths = [test.locate(v.rows[0]) for v in test]  # every file located before any work
    feature_dim = model.feature_dim

    def videos() -> Iterator[tuple[str, np.ndarray]]:
        for video, path in zip(test, paths, strict=True):
            yield video.name, load_features(path, expected_dim=feature_dim)

    items = list(
        tqdm(
            score_videos(model, videos(), device, batch_size),
            total=len(test),
            desc="scoring",
            unit="video",
            disable=not progress,
        )
    )
    return Predictions.from_videos(items)
