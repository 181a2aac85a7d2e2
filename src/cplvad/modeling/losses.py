"""Losses of both stages: top-k MIL losses on video labels (stage 1) and focal loss on pseudo labels (stage 2).

All functions take float32 tensors in the stacked level layout of ``LevelOutputs`` ((B, L, n[, M]) with a
(B, L, n) mask) and average over pyramid levels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cplvad.modeling.dual_branch import upsample_levels


def topk_count(mask: torch.Tensor) -> torch.Tensor:
    """k = floor(t / 16) + 1 for the t valid positions along the last dim of a mask."""
    return mask.sum(dim=-1) // 16 + 1


def topk_mean(values: torch.Tensor, mask: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Mean of the k largest valid values along dim 2 (each (sample, level) its own k).

    values (B, L, n) or (B, L, n, M), mask (B, L, n), k (B, L) -> (B, L) or (B, L, M).
    """
    fill = torch.finfo(values.dtype).min
    extra = values.dim() - 3
    m = mask.view(*mask.shape, *([1] * extra))
    ranked = torch.sort(values.masked_fill(~m, fill), dim=2, descending=True).values
    keep = torch.arange(values.shape[2], device=values.device) < k[..., None]  # (B, L, n)
    keep = keep.view(*keep.shape, *([1] * extra))
    return (ranked * keep).sum(dim=2) / k.view(*k.shape, *([1] * extra)).to(values.dtype)


def topk_bce(binary: torch.Tensor, mask: torch.Tensor, abnormal: torch.Tensor) -> torch.Tensor:
    """L_bce: per level, the mean top-k anomaly probability vs the video label; averaged over levels.

    binary (B, L, n) logits, mask (B, L, n), abnormal (B,) in {0, 1}.
    """
    video = topk_mean(torch.sigmoid(binary), mask, topk_count(mask)).clamp(1e-6, 1 - 1e-6)  # (B, L)
    return F.binary_cross_entropy(video, abnormal[:, None].expand_as(video))


def mil_align(classes: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_nce: per level and class, the mean of the top-k logits -> video logits -> cross-entropy against the
    label distribution (multi-hot normalised to sum 1); averaged over levels.

    classes (B, L, n, M) logits, mask (B, L, n), labels (B, M) multi-hot.
    """
    target = (labels / labels.sum(dim=1, keepdim=True))[:, None, :]
    video = topk_mean(classes, mask, topk_count(mask))  # (B, L, M)
    return -(target * F.log_softmax(video, dim=2)).sum(dim=2).mean()


def abnormality_logit(class_logits: torch.Tensor) -> torch.Tensor:
    """z = logsumexp over abnormal classes - normal logit, so sigmoid(z) = 1 - P[normal]."""
    return torch.logsumexp(class_logits[..., 1:], dim=-1) - class_logits[..., 0]


def soft_focal(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, gamma: float, alpha: float
) -> torch.Tensor:
    """Focal loss for soft targets: |y - p|^gamma * BCE(z, y) * alpha_t, averaged over valid positions."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    loss = (target - p).abs().pow(gamma) * ce * alpha_t
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp(min=1.0)


def level_focal(
    logits: torch.Tensor,
    mask: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    gamma: float,
    alpha: float,
) -> torch.Tensor:
    """Focal loss of every level's logits (B, L, n), upsampled to the snippets of ``target`` (B, n)."""
    up = upsample_levels(logits, mask, target.shape[1])  # (B, L, n); every level has the same valid snippets,
    # so the mean over all (level, snippet) pairs is the mean over levels of the per-level means
    return soft_focal(up, target[:, None].expand_as(up), valid[:, None].expand_as(up), gamma, alpha)
