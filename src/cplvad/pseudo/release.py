"""The vote of the authors' pseudo-label rule as their release computes it (``Generate_gt`` in
models/model.py), vectorised: every level and threshold of every video is one row.

Per row (one level, one threshold): the snippets at or above the threshold form runs, each with the plain
mean of its scores; a run merges into the one before it when it starts at most ``max_gap + 1`` snippets
after that one's last snippet, the merged confidence being their running length-weighted mean (weights
``end - start``, the first run's weight kept for the whole chain, a plain mean when both weights are 0);
merged segments shorter than ``min_length`` are dropped; each kept segment adds its confidence, in
float32, to the snippets ``[start, end)`` (``keep_slips``) or ``[start, end]``. The snippet's vote is
the sum over rows in the release's order (level by level, threshold by threshold).

Arithmetic follows theirs: run sums and the merge recurrence in float64 (Python floats there), the
per-snippet sum in float32 added in their order, so the cut compares the same numbers.
"""

from __future__ import annotations

import torch

from cplvad.config import ReleaseCarConfig


def release_votes(x: torch.Tensor, valid: torch.Tensor, cfg: ReleaseCarConfig) -> torch.Tensor:
    """(N, L', n) step-upsampled scores of the voting levels, (N, n) valid snippets -> (N, n) float32 votes.

    Rows are video-major, then level, then threshold (the release's order); only the positions at or above
    a threshold are visited after the comparison."""
    n_videos, n_levels, n = x.shape
    th = torch.tensor(cfg.thresholds, dtype=x.dtype, device=x.device)
    k = len(cfg.thresholds)
    above = (x[:, :, None, :] >= th[None, None, :, None]) & valid[:, None, None, :]  # (N, L', K, n)
    row, col = torch.nonzero(above.view(-1, n), as_tuple=True)  # row-major: runs are contiguous
    values = x.reshape(-1)[(row // k) * n + col].double()  # row // k = video * L' + level
    start, end, run_row, confidence = _runs_with_means(row, col, values)
    first, score = _merge_chains(run_row, start, end, confidence, cfg.max_gap)
    last = torch.cat([first[1:] - 1, first.new_tensor([len(start) - 1])]) if len(first) else first
    c_row, c_start, c_end = run_row[first], start[first], end[last]
    kept = c_end - c_start + 1 >= cfg.min_length
    c_row, c_start, score = c_row[kept], c_start[kept], score[kept]
    width = c_end[kept] - c_start + (0 if cfg.keep_slips else 1)  # [start, end) as released, or [start, end]
    chain = torch.repeat_interleave(torch.arange(len(c_row), device=x.device), width)
    offset = torch.arange(len(chain), device=x.device) - (torch.cumsum(width, 0) - width)[chain]
    contribution = torch.zeros(n_videos * n_levels * k * n, dtype=torch.float32, device=x.device)
    # chains of a row are disjoint; a Python float -> float32 like the release's `+=`
    contribution[c_row[chain] * n + c_start[chain] + offset] = score.float()[chain]
    contribution = contribution.view(n_videos, n_levels * k, n)
    votes = torch.zeros(n_videos, n, dtype=torch.float32, device=x.device)
    for r in range(n_levels * k):  # float32 sums in the release's order (one vectorised add per row)
        votes += contribution[:, r]
    return votes


def _runs_with_means(
    row: torch.Tensor, col: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The runs of the positions (``row``, ``col``) (row-major, each once): first and last snippet, row,
    and the float64 mean of ``values`` over the run (summed in snippet order, like Python's ``sum``)."""
    joined = (row[1:] == row[:-1]) & (col[1:] == col[:-1] + 1)  # a position continues the one before
    is_start = torch.cat([joined.new_ones(min(len(row), 1)), ~joined])
    is_end = torch.cat([~joined, joined.new_ones(min(len(row), 1))])
    run = torch.cumsum(is_start.long(), 0) - 1
    start, end = col[is_start], col[is_end]
    sums = values.new_zeros(len(start)).index_add_(0, run, values)
    return start, end, row[is_start], sums / (end - start + 1).double()


def _merge_chains(
    row: torch.Tensor, start: torch.Tensor, end: torch.Tensor, confidence: torch.Tensor, max_gap: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The release's ``grouping``: index of each chain's first run, and each chain's merged confidence.

    The recurrence runs over the position inside a chain (one vectorised step per position, all chains at
    once), in float64 and in the release's operation order."""
    new_chain = torch.ones_like(start, dtype=torch.bool)
    new_chain[1:] = (row[1:] != row[:-1]) | (start[1:] - end[:-1] - 1 > max_gap)
    first = torch.nonzero(new_chain).squeeze(1)
    chain = new_chain.long().cumsum(0) - 1
    position = torch.arange(len(start), device=start.device) - first[chain]
    width = (end - start).double()  # their "time" of a segment: end - start
    base = width[first]  # the first run's time, never updated along the chain
    score = confidence[first].clone()
    for p in range(1, int(position.max()) + 1 if len(position) else 1):
        i = torch.nonzero(position == p).squeeze(1)
        c, s, w, conf = chain[i], score[chain[i]], width[i], confidence[i]
        total = base[c] + w
        score[c] = torch.where(total == 0, (s + conf) / 2, (s * base[c] + conf * w) / total)
    return first, score
