"""B-branch: one binary anomaly head shared by all pyramid levels."""

from __future__ import annotations

import math

import torch
from torch import nn

from cplvad.modeling.blocks import ChannelLayerNorm, MaskedConv1d


class BinaryHead(nn.Module):
    """2 x (masked conv k=3 + LN + ReLU) + conv k=3 -> one anomaly logit per position.

    The classifier bias starts at the prior (sigmoid = prior_prob) so early training is not dominated by
    the many normal snippets (focal-loss initialisation, Lin et al. 2017). Padded positions stay zero
    after every layer, so levels concatenated with a zero gap between them are scored in one pass exactly
    as if each level were scored alone.
    """

    def __init__(self, width: int, prior_prob: float):
        super().__init__()
        self.convs = nn.ModuleList([MaskedConv1d(width, width, 3, bias=False) for _ in range(2)])
        self.norms = nn.ModuleList([ChannelLayerNorm(width) for _ in range(2)])
        self.cls = MaskedConv1d(width, 1, 3)
        nn.init.constant_(self.cls.conv.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, width, T) features, (B, 1, T) mask -> (B, T) logits (0 at padded positions)."""
        m = mask.to(h.dtype)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h, _ = conv(h, mask)
            h = torch.relu(norm(h)) * m
        logit, _ = self.cls(h, mask)
        return logit[:, 0]
