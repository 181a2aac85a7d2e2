"""Losses of both stages: top-k MIL losses on video labels (stage 1) and focal loss on pseudo labels (stage 2).

All functions take float32 tensors and average over pyramid levels where they take lists of levels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cplvad.modeling.model import LevelOutputs, upsample_levels


def topk_count(mask: torch.Tensor) -> torch.Tensor:
    """k = floor(t / 16) + 1 for the t valid positions of each sample (B,)."""
    return mask.sum(dim=1) // 16 + 1


def topk_mean(values: torch.Tensor, mask: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Mean of the k largest valid values along dim 1 (per sample k); (B, t[, M]) -> (B[, M])."""
    fill = torch.finfo(values.dtype).min
    m = mask if values.dim() == 2 else mask[..., None]
    ranked = torch.sort(values.masked_fill(~m, fill), dim=1, descending=True).values
    keep = torch.arange(values.shape[1], device=values.device)[None, :] < k[:, None]
    if values.dim() == 3:
        keep = keep[..., None]
    return (ranked * keep).sum(dim=1) / k.view(-1, *([1] * (values.dim() - 2))).to(values.dtype)


def topk_bce(binary: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], abnormal: torch.Tensor) -> torch.Tensor:
    """L_bce: per level, the mean top-k anomaly probability vs the video label; averaged over levels."""
    losses = []
    for logits, mask in zip(binary, masks, strict=True):
        video = topk_mean(torch.sigmoid(logits), mask, topk_count(mask)).clamp(1e-6, 1 - 1e-6)
        losses.append(F.binary_cross_entropy(video, abnormal))
    return torch.stack(losses).mean()


def mil_align(classes: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """L_nce: per level and class, the mean of the top-k logits -> video logits -> cross-entropy against the
    label distribution (multi-hot normalised to sum 1); averaged over levels."""
    target = labels / labels.sum(dim=1, keepdim=True)
    losses = []
    for logits, mask in zip(classes, masks, strict=True):
        video = topk_mean(logits, mask, topk_count(mask))
        losses.append(-(target * F.log_softmax(video, dim=1)).sum(dim=1).mean())
    return torch.stack(losses).mean()


def abnormality_logit(class_logits: torch.Tensor) -> torch.Tensor:
    """z = logsumexp over abnormal classes - normal logit, so sigmoid(z) = 1 - P[normal]."""
    return torch.logsumexp(class_logits[..., 1:], dim=-1) - class_logits[..., 0]


def soft_focal(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, gamma: float, alpha: float) -> torch.Tensor:
    """Focal loss for soft targets: |y - p|^gamma * BCE(z, y) * alpha_t, averaged over valid positions."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    loss = (target - p).abs().pow(gamma) * ce * alpha_t
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp(min=1.0)


def level_focal(
    level_logits: Sequence[torch.Tensor],
    out: LevelOutputs,
    target: torch.Tensor,
    valid: torch.Tensor,
    gamma: float,
    alpha: float,
) -> torch.Tensor:
    """Focal loss of every level's logits, upsampled to the n snippets of ``target`` (B, n); level mean."""
    up = upsample_levels(level_logits, out.masks, target.shape[1])  # (B, L, n)
    losses = [soft_focal(up[:, i], target, valid, gamma, alpha) for i in range(up.shape[1])]
    return torch.stack(losses).mean()
