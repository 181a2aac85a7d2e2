"""The CPL-VAD dual-branch model: a temporal pyramid shared by a binary (B) and a category (C) branch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cplvad.config import ModelConfig
from cplvad.modeling.encoder import PyramidEncoder
from cplvad.modeling.heads import BinaryHead
from cplvad.modeling.prompts import PromptLearner


@dataclass
class LevelOutputs:
    """Per pyramid level i: B logits (B, t_i), C logits (B, t_i, M), valid mask (B, t_i)."""

    binary: list[torch.Tensor]
    classes: list[torch.Tensor]
    masks: list[torch.Tensor]


class CPLVAD(nn.Module):
    def __init__(self, cfg: ModelConfig, feature_dim: int, prompts: PromptLearner, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        self.feature_dim = feature_dim
        self.encoder = PyramidEncoder(feature_dim, cfg)
        self.binary_head = BinaryHead(cfg.width, cfg.prior_prob)
        self.visual_proj = nn.Linear(cfg.width, embed_dim) if cfg.width != embed_dim else nn.Identity()
        self.prompts = prompts

    @property
    def n_classes(self) -> int:
        return self.prompts.n_classes

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> LevelOutputs:
        """x: (B, n, D) snippet features, mask: (B, n) True at valid snippets."""
        feats, masks = self.encoder(x, mask)
        binary = self.binary_head(feats, masks)
        text = F.normalize(self.prompts(), dim=-1)  # (L, M, E)
        classes = []
        for i, f in enumerate(feats):
            v = F.normalize(self.visual_proj(f.transpose(1, 2)), dim=-1)
            classes.append(v @ text[i].to(v.dtype).T / self.cfg.temperature)
        return LevelOutputs(binary, classes, [m[:, 0] for m in masks])


def upsample_levels(values: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], length: int) -> torch.Tensor:
    """Position-exact linear interpolation of every level to ``length`` snippets -> (B, L, length, ...).

    Value j of level i sits at snippet 2^i * j; snippets between two values are interpolated linearly,
    snippets after a video's last valid value keep it (padding is never interpolated in).
    Works for (B, t_i) and (B, t_i, M) tensors; ``masks`` are the (B, t_i) valid masks of the levels.
    """
    out = []
    pos = torch.arange(length, device=values[0].device)[None, :]
    for i, (v, m) in enumerate(zip(values, masks, strict=True)):
        scale = 2**i
        last = (m.sum(dim=1, keepdim=True) - 1).clamp(min=0)
        j0 = torch.minimum(pos // scale, last)
        j1 = torch.minimum(j0 + 1, last)
        frac = ((pos - j0 * scale).to(v.dtype) / scale).clamp(max=1.0)
        rows = torch.arange(v.shape[0], device=v.device)[:, None]
        if v.dim() == 3:
            frac = frac[..., None]
        out.append(v[rows, j0] * (1 - frac) + v[rows, j1] * frac)
    return torch.stack(out, dim=1)
