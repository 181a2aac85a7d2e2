"""Consistency-Aware Refinement (CAR): multi-level scores of the stage-1 model -> snippet pseudo labels.

Vectorised over videos, levels and snippets (torch, CPU or GPU): no Python loop per video, segment or
threshold. Steps (docs/method.md#consistency-aware-refinement-car): position-exact upsampling of every
level; scale aggregation with an adaptive Gaussian RBF whose bandwidth is the MAD of the level scores;
thresholding (or a vote over thresholds), merging of runs separated by short gaps, removal of short
runs, a top-k fallback for abnormal videos left without a run; flat-topped Gaussian pseudo labels on
each kept run.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cplvad.config import CarConfig
from cplvad.modeling.dual_branch import upsample_levels

MAD_TO_SIGMA = 1.4826
"""Consistency constant making the median absolute deviation estimate a Gaussian sigma."""


def _median(x: torch.Tensor, dim: int) -> torch.Tensor:
    """True median (mean of the two middle values for an even count); torch.median returns the lower one."""
    srt = x.sort(dim=dim).values
    n = x.shape[dim]
    return (srt.select(dim, (n - 1) // 2) + srt.select(dim, n // 2)) / 2


def aggregate_scales(x: torch.Tensor, sigma_min: float) -> torch.Tensor:
    """(N, L, n) level scores -> (N, n): weighted mean with RBF weights w_i ∝ Σ_{j≠i} exp(-(x_i-x_j)²/2σ²).

    σ = max(1.4826 · median_i |x_i - median(x)|, σ_min) per snippet, so a level that disagrees with the
    others gets a weight near 0 and equal levels get equal weights (uniform also if all weights vanish).
    """
    levels = x.shape[1]
    med = _median(x, 1)
    sigma = torch.clamp(MAD_TO_SIGMA * _median((x - med[:, None]).abs(), 1), min=sigma_min)  # (N, n)
    kernel = x[:, :, None, :] - x[:, None, :, :]  # (N, L, L, n), computed in place below
    kernel.square_().mul_((-0.5 / sigma.square())[:, None, None, :]).exp_()
    kernel.diagonal(dim1=1, dim2=2).zero_()  # j != i
    w = kernel.sum(dim=2)  # (N, L, n)
    total = w.sum(dim=1, keepdim=True)
    w = torch.where(total > 0, w / total.clamp(min=torch.finfo(w.dtype).tiny), torch.full_like(w, 1.0 / levels))
    return (w * x).sum(dim=1)


def threshold_vote(scores: torch.Tensor, thresholds: Sequence[float]) -> torch.Tensor:
    """Positive where the score reaches at least half of the thresholds (one threshold: s >= θ)."""
    th = torch.tensor(list(thresholds), dtype=scores.dtype, device=scores.device)
    votes = (scores[:, None, :] >= th[None, :, None]).sum(dim=1)
    return votes * 2 >= len(thresholds)


def run_bounds(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each position of a (N, n) boolean tensor: first and last index of its run of Trues.

    Values at False positions are meaningless.
    """
    n = b.shape[1]
    idx = torch.arange(n, device=b.device).expand_as(b)
    prev = torch.nn.functional.pad(b[:, :-1], (1, 0), value=False)
    nxt = torch.nn.functional.pad(b[:, 1:], (0, 1), value=False)
    starts = torch.where(b & ~prev, idx, torch.full_like(idx, -1)).cummax(dim=1).values
    ends_rev = torch.where(b & ~nxt, idx, torch.full_like(idx, n)).flip(1).cummin(dim=1).values
    return starts, ends_rev.flip(1)


def fill_gaps(b: torch.Tensor, max_gap: int) -> torch.Tensor:
    """Merge runs separated by at most ``max_gap`` False positions."""
    n = b.shape[1]
    idx = torch.arange(n, device=b.device).expand_as(b)
    prev_one = torch.where(b, idx, torch.full_like(idx, -1)).cummax(dim=1).values
    next_one = torch.where(b, idx, torch.full_like(idx, n)).flip(1).cummin(dim=1).values.flip(1)
    gap = ~b & (prev_one >= 0) & (next_one < n) & (next_one - prev_one - 1 <= max_gap)
    return b | gap


def drop_short_runs(b: torch.Tensor, min_length: int) -> torch.Tensor:
    starts, ends = run_bounds(b)
    return b & (ends - starts + 1 >= min_length)


def topk_fallback(b: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor, abnormal: torch.Tensor) -> torch.Tensor:
    """Abnormal videos without any run keep their top-k snippets (k = floor(V/16) + 1)."""
    empty = abnormal & ~b.any(dim=1)
    if not empty.any():
        return b
    k = valid.sum(dim=1) // 16 + 1
    ranked = scores.masked_fill(~valid, float("-inf")).argsort(dim=1, descending=True)
    rank = torch.empty_like(ranked)
    rank.scatter_(1, ranked, torch.arange(b.shape[1], device=b.device).expand_as(ranked))
    top = (rank < k[:, None]) & valid
    return torch.where(empty[:, None], top, b)


def flat_gaussian(b: torch.Tensor, flat_ratio: float) -> torch.Tensor:
    """Each run -> 1 on its central ``flat_ratio`` part, Gaussian tails (σ = tail/3) toward its edges."""
    starts, ends = run_bounds(b)
    idx = torch.arange(b.shape[1], device=b.device, dtype=torch.float32).expand(b.shape)
    half = (ends - starts + 1).float() / 2
    centre = (starts + ends).float() / 2
    flat_half = flat_ratio * half
    sigma = (half - flat_half) / 3
    dist = ((idx - centre).abs() - flat_half).clamp(min=0)
    tails = torch.exp(-(dist**2) / (2 * sigma.clamp(min=1e-6) ** 2))
    value = torch.where(dist > 0, tails, torch.ones_like(tails))
    return torch.where(b, value, torch.zeros_like(value))


def refine(
    level_scores: torch.Tensor, level_mask: torch.Tensor, abnormal: torch.Tensor, length: int, cfg: CarConfig
) -> torch.Tensor:
    """Pseudo labels (N, length) in [0, 1] from one branch's per-level snippet scores.

    ``level_scores``: (N, L, n) scores in [0, 1] in the LevelOutputs layout (level i uses its first
    n / 2^i positions); ``level_mask``: (N, L, n) valid positions; ``abnormal``: (N,) video labels (normal
    videos get all zeros). ``cfg.enabled=False`` is the ablation: plain mean over levels, thresholded.
    """
    x = upsample_levels(level_scores.float(), level_mask, length)  # (N, L, length)
    valid = torch.arange(length, device=x.device)[None, :] < level_mask[:, 0].sum(dim=1, keepdim=True)
    keep = valid & abnormal[:, None]
    if not cfg.enabled:
        return (threshold_vote(x.mean(dim=1), cfg.thresholds) & keep).float()
    scores = aggregate_scales(x, cfg.sigma_min)
    b = threshold_vote(scores, cfg.thresholds) & keep
    b = drop_short_runs(fill_gaps(b, cfg.max_gap), cfg.min_length)
    if cfg.keep_topk:
        b = topk_fallback(b, scores, valid, abnormal)
    return flat_gaussian(b, cfg.flat_ratio)
