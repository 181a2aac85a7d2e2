"""Consistency-Aware Refinement (CAR), the building blocks: runs, gaps, votes and flat Gaussians.

Vectorised over videos, levels and snippets (torch, CPU or GPU): no Python loop per video, segment or
threshold. The rules that combine them (``car.rule``) are in ``cplvad.pseudo.rules``; the release's
per-level vote in ``cplvad.pseudo.release`` (docs/method.md#consistency-aware-refinement-car).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cplvad.config import ReleaseCarConfig
from cplvad.errors import ConfigError

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
    w = torch.where(
        total > 0, w / total.clamp(min=torch.finfo(w.dtype).tiny), torch.full_like(w, 1.0 / levels)
    )
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


def topk_fallback(
    b: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor, abnormal: torch.Tensor
) -> torch.Tensor:
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


def flat_gaussian(b: torch.Tensor, flat_ratio: float | torch.Tensor) -> torch.Tensor:
    """Each run -> 1 on its central ``flat_ratio`` part, Gaussian tails (σ = tail/3) toward its edges.

    ``flat_ratio``: one ratio, or one per position (N, n) read at each run's positions.
    """
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


def flat_gaussian_integer(b: torch.Tensor, flat_ratio: torch.Tensor) -> torch.Tensor:
    """The authors' discretisation: a run of ``len`` snippets has ``int(len * ratio)`` flat ones and
    ``tail = (len - flat) // 2`` snippets at each edge valued exp(-(d - (tail - 1))² / (2 (tail/3)²)) at
    distance d from the edge, so the tail reaches 1 next to the flat part (an odd remainder widens the
    flat part). ``flat_ratio``: (N, n) float64 ratio read at each run's positions."""
    starts, ends = run_bounds(b)
    length = ends - starts + 1
    flat = torch.floor(length.double() * flat_ratio.double()).long()  # Python's int(len * ratio), in float64
    tail = ((length - flat) // 2).double()
    idx = torch.arange(b.shape[1], device=b.device).expand(b.shape)
    edge = torch.minimum(idx - starts, ends - idx).double()  # distance from the nearer edge of the run
    tails = torch.exp(-0.5 * (3 * (edge - (tail - 1)) / tail.clamp(min=1)) ** 2)
    value = torch.where(edge < tail, tails, torch.ones_like(tails)).float()
    return torch.where(b, value, torch.zeros_like(value))


def segment_means(runs: torch.Tensor, above: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """At each position of a run of ``runs``: the mean of ``scores`` over the run's ``above`` positions
    (0 outside runs). Prefix sums: no loop over runs."""
    zero = torch.zeros_like(scores[:, :1])
    total = torch.cat([zero, torch.where(above, scores, 0.0).cumsum(dim=1)], dim=1)
    count = torch.cat([zero, above.to(scores.dtype).cumsum(dim=1)], dim=1)
    starts, ends = run_bounds(runs)
    starts, ends = starts.clamp(min=0), ends.clamp(max=runs.shape[1] - 1) + 1
    run_total = total.gather(1, ends) - total.gather(1, starts)
    run_count = count.gather(1, ends) - count.gather(1, starts)
    return torch.where(runs, run_total / run_count.clamp(min=1), 0.0)


def paper_votes(scores: torch.Tensor, valid: torch.Tensor, cfg: ReleaseCarConfig) -> torch.Tensor:
    """(N, n) per-snippet sum, over ``cfg.thresholds``, of the mean score of the kept segment covering it
    (the paper rule: the release's grouping and filter on one aggregated score).

    At each threshold: snippets at or above it, runs merged across at most ``max_gap`` snippets, merged
    segments shorter than ``min_length`` dropped; a segment's confidence is the mean score of its snippets
    that passed the threshold, and it counts on all its snippets. All thresholds at once, as N·K rows.
    """
    th = torch.tensor(cfg.thresholds, dtype=scores.dtype, device=scores.device)
    k, (n_videos, n) = len(cfg.thresholds), scores.shape
    above = ((scores[:, None, :] >= th[None, :, None]) & valid[:, None, :]).reshape(n_videos * k, n)
    runs = drop_short_runs(fill_gaps(above, cfg.max_gap), cfg.min_length)
    rows = scores[:, None, :].expand(n_videos, k, n).reshape(n_videos * k, n)
    return segment_means(runs, above, rows).view(n_videos, k, n).sum(dim=1)


def select_levels(x: torch.Tensor, levels: list[int]) -> torch.Tensor:
    """The levels ``car.release.levels`` of (N, L, n) per-level values, refused when the model lacks one."""
    if max(levels) >= x.shape[1]:
        raise ConfigError(
            f"car.release.levels = {levels} names a level the model does not have (it has {x.shape[1]}: "
            f"0..{x.shape[1] - 1}); set car.release.levels to levels below model.levels"
        )
    return x[:, levels]


def release_flat_labels(
    b: torch.Tensor, valid: torch.Tensor, cfg: ReleaseCarConfig, integer: bool
) -> torch.Tensor:
    """Flat-Gaussian labels of kept runs with the release's two ratios: ``flat_ratio``, or ``flat_ratio_end``
    for a run that reaches the sample's last valid snippet; integer lengths (theirs) or Eq. 7's shape."""
    last = valid.sum(dim=1, keepdim=True) - 1
    _, ends = run_bounds(b)
    # float64 like Python's floats: int(60 * 0.95) is 57, but 56 from a float32 0.95
    ratios = torch.tensor([cfg.flat_ratio, cfg.flat_ratio_end], dtype=torch.float64, device=b.device)
    ratio = ratios[(ends == last).long()]
    return flat_gaussian_integer(b, ratio) if integer else flat_gaussian(b, ratio)
