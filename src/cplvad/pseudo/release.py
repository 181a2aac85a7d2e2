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
import torch.nn.functional as F

from cplvad.config import ReleaseCarConfig


def release_votes(x: torch.Tensor, valid: torch.Tensor, cfg: ReleaseCarConfig) -> torch.Tensor:
    """(N, L', n) step-upsampled scores of the voting levels, (N, n) valid snippets -> (N, n) float32 votes."""
    n_videos, n_levels, n = x.shape
    th = torch.tensor(cfg.thresholds, dtype=x.dtype, device=x.device)
    k = len(cfg.thresholds)
    rows = ((x[:, :, None, :] >= th[None, None, :, None]) & valid[:, None, None, :]).reshape(-1, n)
    values = x[:, :, None, :].expand(-1, -1, k, -1).reshape(-1, n).double()
    row, start, end, confidence = _runs_with_means(rows, values)
    first, score = _merge_chains(row, start, end, confidence, cfg.max_gap)
    last = torch.cat([first[1:] - 1, first.new_tensor([len(start) - 1])]) if len(first) else first
    c_row, c_start, c_end = row[first], start[first], end[last]
    kept = c_end - c_start + 1 >= cfg.min_length
    c_row, c_start, c_stop = c_row[kept], c_start[kept], c_end[kept] + (0 if cfg.keep_slips else 1)
    # chains of a row are disjoint: mark each kept chain's id at its start and its negation at its stop
    marks = torch.zeros(rows.shape[0], n + 1, dtype=torch.long, device=x.device)
    chain_id = torch.arange(1, len(c_row) + 1, device=x.device)
    marks.index_put_((c_row, c_start), chain_id, accumulate=True)
    marks.index_put_((c_row, c_stop), -chain_id, accumulate=True)
    cover = marks.cumsum(dim=1)[:, :n]
    score32 = torch.cat([score.new_zeros(1), score[kept]]).float()  # Python float -> float32, as `+=` does
    contribution = score32[cover].view(n_videos, n_levels * k, n)
    votes = torch.zeros(n_videos, n, dtype=torch.float32, device=x.device)
    for r in range(n_levels * k):  # float32 sums in the release's order (one vectorised add per row)
        votes += contribution[:, r]
    return votes


def _runs_with_means(
    rows: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every run of True in (R, n) ``rows``, in row-major order: its row, first and last snippet, and the
    float64 mean of ``values`` over it (summed in snippet order, like Python's ``sum``)."""
    starts = rows & ~F.pad(rows[:, :-1], (1, 0), value=False)
    ends = rows & ~F.pad(rows[:, 1:], (0, 1), value=False)
    row, start = torch.nonzero(starts, as_tuple=True)
    _, end = torch.nonzero(ends, as_tuple=True)
    run_at = starts.flatten().long().cumsum(0) - 1  # the run each position of a run belongs to
    member = rows.flatten()
    sums = values.new_zeros(len(start)).index_add_(0, run_at[member], values.flatten()[member])
    return row, start, end, sums / (end - start + 1).double()


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
