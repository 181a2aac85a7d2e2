"""B-branch: one binary anomaly head shared by all pyramid levels."""

from __future__ import annotations

import math

import torch
from torch import nn

from cplvad.modeling.blocks import ChannelLayerNorm, MaskedConv1d


class BinaryHead(nn.Module):
    """2 x (masked conv k=3 + LN + ReLU) + conv k=3 -> one anomaly logit per position.

    The classifier bias starts at the prior (sigmoid = prior_prob) so early training is not dominated by
    the many normal snippets (focal-loss initialisation, Lin et al. 2017).
    """

    def __init__(self, width: int, prior_prob: float):
        super().__init__()
        self.convs = nn.ModuleList([MaskedConv1d(width, width, 3, bias=False) for _ in range(2)])
        self.norms = nn.ModuleList([ChannelLayerNorm(width) for _ in range(2)])
        self.cls = MaskedConv1d(width, 1, 3)
        nn.init.constant_(self.cls.conv.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per level (B, width, t_i) -> (B, t_i) logits (padded positions hold 0)."""
        out = []
        for h, m in zip(feats, masks, strict=True):
            for conv, norm in zip(self.convs, self.norms, strict=True):
                h, _ = conv(h, m)
                h = torch.relu(norm(h))
            logit, _ = self.cls(h, m)
            out.append(logit[:, 0])
        return out
