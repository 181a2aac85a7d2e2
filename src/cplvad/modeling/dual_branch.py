"""The CPL-VAD dual-branch model: a temporal pyramid shared by a binary (B) and a category (C) branch."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cplvad.config import ModelConfig
from cplvad.modeling.heads import BinaryHead
from cplvad.modeling.prompts import PromptLearner
from cplvad.modeling.temporal_encoder import PyramidEncoder


@dataclass
class LevelOutputs:
    """All pyramid levels stacked and padded to n positions.

    Level i has t_i = n / 2^i positions; its position j sits at snippet 2^i * j. ``binary``: (B, L, n)
    B-branch logits; ``classes``: (B, L, n, M) C-branch logits; ``mask``: (B, L, n) True at valid positions
    (padding of the video and the unused tail of coarse levels are False).
    """

    binary: torch.Tensor
    classes: torch.Tensor
    mask: torch.Tensor


@functools.lru_cache(maxsize=16)
def _pyramid_layout(
    n: int, levels: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where position j of level i lies when the levels are concatenated with one gap between them.

    Returns index (L, n) into the concatenation, level ids (L, n), and in-level flags (L, n).
    """
    index = torch.zeros(levels, n, dtype=torch.long)
    inside = torch.zeros(levels, n, dtype=torch.bool)
    offset = 0
    for i in range(levels):
        t = n // 2**i
        index[i, :t] = torch.arange(offset, offset + t)
        inside[i, :t] = True
        offset += t + 1
    level_ids = torch.arange(levels)[:, None].expand(levels, n).contiguous()
    return index.to(device), level_ids.to(device), inside.to(device)


@dataclass(frozen=True)
class LevelFusion:
    """How scoring combines a chunk's levels (``eval.level_fusion``, ``eval.level_upsampling``); the
    defaults are the paper's: linear upsampling, the mean of the level logits."""

    average: Literal["logits", "probabilities"] = "logits"
    upsampling: Literal["linear", "repeat"] = "linear"


class CPLVAD(nn.Module):
    def __init__(self, cfg: ModelConfig, feature_dim: int, prompts: PromptLearner, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        self.fusion = LevelFusion()
        """How ``eval.scoring`` combines the levels; set from the config the model is built or scored with."""
        self.feature_dim = feature_dim
        self.encoder = PyramidEncoder(feature_dim, cfg)
        self.binary_head = BinaryHead(cfg.width, cfg.prior_prob)
        self.visual_proj = nn.Linear(cfg.width, embed_dim) if cfg.width != embed_dim else nn.Identity()
        self.prompts = prompts

    @property
    def n_classes(self) -> int:
        return self.prompts.n_classes

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> LevelOutputs:
        """x: (B, n, D) snippet features, mask: (B, n) True at valid snippets.

        The heads run once over all levels concatenated along time with a zero gap between levels (the
        heads' padding is zero, so this equals scoring each level alone, with L times fewer kernels).
        """
        b, n, _ = x.shape
        feats, masks = self.encoder(x, mask)
        gap = feats[0].new_zeros(b, feats[0].shape[1], 1)
        no = masks[0].new_zeros(b, 1, 1)
        cat = torch.cat([t for f in feats for t in (f, gap)][:-1], dim=2)
        cat_mask = torch.cat([t for m in masks for t in (m, no)][:-1], dim=2)
        binary = self.binary_head(cat, cat_mask)  # (B, T_all)
        levels = len(feats)
        text = F.normalize(self.prompts(), dim=-1)  # (L, M, E)
        visual = F.normalize(self.visual_proj(cat.transpose(1, 2)), dim=-1)  # (B, T_all, E)
        logits = visual @ text.flatten(0, 1).T.to(visual.dtype) / self.cfg.temperature  # (B, T_all, L*M)
        index, level_ids, inside = _pyramid_layout(n, levels, x.device)
        classes = logits.view(b, -1, levels, self.n_classes)[:, index, level_ids]  # (B, L, n, M)
        valid = cat_mask[:, 0][:, index] & inside
        return LevelOutputs(binary[:, index] * inside, classes, valid)


@functools.lru_cache(maxsize=32)
def _interpolation_plan(n: int, levels: int, length: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Flat source indices (into L * n) of the left and right neighbour of every output snippet, and
    the right neighbour's weight (L, length); the same for every video."""
    pos = torch.arange(length)
    left, right, frac = [], [], []
    for i in range(levels):
        scale, t = 2**i, n // 2**i
        j0 = torch.clamp(pos // scale, max=t - 1)
        j1 = torch.clamp(j0 + 1, max=t - 1)
        left.append(i * n + j0)
        right.append(i * n + j1)
        frac.append(((pos - j0 * scale).float() / scale).clamp(max=1.0))
    return torch.cat(left).to(device), torch.cat(right).to(device), torch.stack(frac).to(device)


def upsample_levels(values: torch.Tensor, mask: torch.Tensor, length: int) -> torch.Tensor:
    """Position-exact linear interpolation of every level to ``length`` snippets.

    ``values``: (B, L, n) or (B, L, n, M) level values (LevelOutputs layout), ``mask``: (B, L, n).
    Value j of level i sits at snippet 2^i * j; snippets between two values are interpolated linearly,
    snippets after a video's last valid value keep it (padding is never interpolated in: it is first
    overwritten with the last valid value). Returns (B, L, length) or (B, L, length, M).
    """
    b, levels, n = values.shape[:3]
    tail = values.shape[3:]
    last = (mask.sum(dim=2) - 1).clamp(min=0).view(b, levels, 1, *([1] * len(tail)))
    last_value = values.gather(2, last.expand(b, levels, 1, *tail))
    held = torch.where(mask.view(b, levels, n, *([1] * len(tail))), values, last_value)
    left, right, frac = _interpolation_plan(n, levels, length, values.device)
    flat = held.reshape(b, levels * n, *tail)
    frac = frac.to(values.dtype).view(1, levels, length, *([1] * len(tail)))
    lo = flat.index_select(1, left).view(b, levels, length, *tail)
    hi = flat.index_select(1, right).view(b, levels, length, *tail)
    return lo + (hi - lo) * frac


@functools.lru_cache(maxsize=32)
def _repeat_plan(n: int, levels: int, length: int, device: torch.device) -> torch.Tensor:
    """Flat source index (into L * n) of every output snippet of every level: value floor(t / 2^i)."""
    pos = torch.arange(length)
    return torch.cat([i * n + torch.clamp(pos // 2**i, max=n // 2**i - 1) for i in range(levels)]).to(device)


def repeat_levels(values: torch.Tensor, length: int) -> torch.Tensor:
    """Step upsampling of every level to ``length`` snippets: value j of level i repeated 2^i times (the
    authors' release, ``repeat_interleave``). ``values``: (B, L, n) or (B, L, n, M); returns (B, L, length)
    or (B, L, length, M). A valid snippet only ever reads a valid position of each level."""
    b, levels, n = values.shape[:3]
    tail = values.shape[3:]
    flat = values.reshape(b, levels * n, *tail)
    return flat.index_select(1, _repeat_plan(n, levels, length, values.device)).view(b, levels, length, *tail)
