"""Temporal encoder: snippet features -> a pyramid of L levels of length n, n/2, ..., n/2^(L-1)."""

from __future__ import annotations

import math

import torch
from torch import nn

from cplvad.config import ModelConfig
from cplvad.modeling.blocks import ChannelLayerNorm, MaskedConv1d, TransformerBlock, sinusoid_encoding


class PyramidEncoder(nn.Module):
    """Conv embedding, sinusoidal positions, stride-1 stem blocks, then one stride-2 block per level.

    Finer levels use local (band) attention; the block producing the coarsest level attends globally.
    Each level ends in a LayerNorm (identity neck).
    """

    def __init__(self, in_dim: int, cfg: ModelConfig):
        super().__init__()
        width = cfg.width
        self.embed = nn.ModuleList([MaskedConv1d(in_dim, width, 3), MaskedConv1d(width, width, 3)])
        self.embed_norms = nn.ModuleList([ChannelLayerNorm(width), ChannelLayerNorm(width)])
        self.register_buffer(
            "pos", sinusoid_encoding(cfg.max_len, width) / math.sqrt(width), persistent=False
        )

        def block(stride: int, global_attn: bool) -> TransformerBlock:
            window = None if global_attn else cfg.window
            return TransformerBlock(width, cfg.heads, stride, window, cfg.mlp_ratio, cfg.dropout)

        coarsest_only = cfg.levels == 1
        self.stem = nn.ModuleList([block(1, coarsest_only) for _ in range(cfg.stem_blocks)])
        self.branch = nn.ModuleList([block(2, i == cfg.levels - 2) for i in range(cfg.levels - 1)])
        self.necks = nn.ModuleList([ChannelLayerNorm(width) for _ in range(cfg.levels)])

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """x: (B, n, D) features, mask: (B, n) bool -> per level (B, width, t_i) features and (B, 1, t_i) masks."""
        m = mask[:, None, :]
        h = x.transpose(1, 2) * m.to(x.dtype)  # whatever sits in the padding must not reach valid snippets
        for conv, norm in zip(self.embed, self.embed_norms, strict=True):
            h, m = conv(h, m)
            h = torch.relu(norm(h)) * m.to(h.dtype)
        h = h + self.pos[:, :, : h.shape[-1]].to(h.dtype) * m.to(h.dtype)
        for blk in self.stem:
            h, m = blk(h, m)
        feats, masks = [h], [m]
        for blk in self.branch:
            h, m = blk(h, m)
            feats.append(h)
            masks.append(m)
        feats = [neck(f) * mk.to(f.dtype) for neck, f, mk in zip(self.necks, feats, masks, strict=True)]
        return feats, masks
