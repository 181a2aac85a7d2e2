"""The CAR rules by name (``car.rule``): one branch's per-level scores -> snippet pseudo labels.

A rule is ``rule(level_scores, level_mask, valid, abnormal, cfg) -> (N, n) labels in [0, 1]``:
``level_scores`` (N, L, n) in [0, 1] in the LevelOutputs layout (level i in its first n / 2^i positions),
``level_mask`` (N, L, n) its valid positions, ``valid`` (N, n) the valid snippets, ``abnormal`` (N,) the
video labels; normal videos and padding get 0. Rules register in ``CAR_RULES``; the config checks
``car.rule`` against it, and ``refine`` looks it up, so a new rule needs no other change
(docs/architecture.md#a-new-refinement-rule-car). Built in:

- ``simple``: the paper's RBF aggregation of all levels (linear upsampling), then one threshold or a
  majority vote, gap filling, a minimum length and the continuous flat Gaussian (``car.*``);
- ``paper``: the RBF aggregation of ``car.release.levels``, then the release's grouping, filter and flat
  Gaussian with their numbers (``car.release``) on that one score, cut at ``vote_sum / len(levels)``;
- ``release``: the authors' ``Generate_gt`` as their code runs it: every voting level step-upsampled and
  voted on separately (``cplvad.pseudo.release``), cut at ``vote_sum``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cplvad.config import CarConfig
from cplvad.modeling.dual_branch import repeat_levels, upsample_levels
from cplvad.pseudo.car import (
    aggregate_scales,
    drop_short_runs,
    fill_gaps,
    flat_gaussian,
    paper_votes,
    release_flat_labels,
    select_levels,
    threshold_vote,
    topk_fallback,
)
from cplvad.pseudo.release import release_votes
from cplvad.registry import Registry

CarRule = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, CarConfig], torch.Tensor]
CAR_RULES: Registry[CarRule] = Registry("car.rule", "CAR rule")


def refine(
    level_scores: torch.Tensor, level_mask: torch.Tensor, abnormal: torch.Tensor, length: int, cfg: CarConfig
) -> torch.Tensor:
    """Pseudo labels (N, length) in [0, 1] of one branch with the rule ``cfg.rule``; ``cfg.enabled=False``
    is the ablation: plain mean over linearly upsampled levels, thresholded, hard 0/1 labels."""
    level_scores = level_scores.float()
    valid = torch.arange(length, device=level_scores.device)[None, :] < level_mask[:, 0].sum(
        dim=1, keepdim=True
    )
    if not cfg.enabled:
        mean = upsample_levels(level_scores, level_mask, length).mean(dim=1)
        return (threshold_vote(mean, cfg.thresholds) & valid & abnormal[:, None]).float()
    return CAR_RULES[cfg.rule](level_scores, level_mask, valid, abnormal, cfg)


def _fallback(
    b: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor, abnormal: torch.Tensor, cfg: CarConfig
) -> torch.Tensor:
    return topk_fallback(b, scores, valid, abnormal) if cfg.keep_topk else b


@CAR_RULES.register("simple")
def simple_rule(
    level_scores: torch.Tensor,
    level_mask: torch.Tensor,
    valid: torch.Tensor,
    abnormal: torch.Tensor,
    cfg: CarConfig,
) -> torch.Tensor:
    scores = aggregate_scales(upsample_levels(level_scores, level_mask, valid.shape[1]), cfg.sigma_min)
    b = threshold_vote(scores, cfg.thresholds) & valid & abnormal[:, None]
    b = drop_short_runs(fill_gaps(b, cfg.max_gap), cfg.min_length)
    return flat_gaussian(_fallback(b, scores, valid, abnormal, cfg), cfg.flat_ratio)


@CAR_RULES.register("paper")
def paper_rule(
    level_scores: torch.Tensor,
    level_mask: torch.Tensor,
    valid: torch.Tensor,
    abnormal: torch.Tensor,
    cfg: CarConfig,
) -> torch.Tensor:
    x = select_levels(upsample_levels(level_scores, level_mask, valid.shape[1]), cfg.release.levels)
    return paper_labels(aggregate_scales(x, cfg.sigma_min), valid, abnormal, cfg)


def paper_labels(
    scores: torch.Tensor, valid: torch.Tensor, abnormal: torch.Tensor, cfg: CarConfig
) -> torch.Tensor:
    """The paper rule after the aggregation: (N, n) aggregated scores -> runs -> flat-Gaussian labels."""
    rel = cfg.release
    b = (paper_votes(scores, valid, rel) >= rel.vote_sum / len(rel.levels)) & valid & abnormal[:, None]
    b = _fallback(b, scores, valid, abnormal, cfg)
    return release_flat_labels(b, valid, rel, integer=rel.discretisation == "integer")


@CAR_RULES.register("release")
def release_rule(
    level_scores: torch.Tensor,
    level_mask: torch.Tensor,
    valid: torch.Tensor,
    abnormal: torch.Tensor,
    cfg: CarConfig,
) -> torch.Tensor:
    rel = cfg.release
    x = select_levels(repeat_levels(level_scores, valid.shape[1]), rel.levels)
    b = (release_votes(x, valid, rel) >= rel.vote_sum) & valid & abnormal[:, None]
    b = _fallback(b, x.mean(dim=1), valid, abnormal, cfg)
    return release_flat_labels(b, valid, rel, integer=True)
