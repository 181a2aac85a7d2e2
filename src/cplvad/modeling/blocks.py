"""Masked 1-D building blocks (ActionFormer-style): convolutions, channel LayerNorm, transformer blocks.

Tensors are channels-first ``(B, C, T)``; masks are boolean ``(B, 1, T)`` with True at valid snippets.
Every block zeroes its output at padded positions so padding never leaks into valid ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MaskedConv1d(nn.Module):
    """Conv1d whose output is masked; with stride s the mask is downsampled by nearest neighbour."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = True):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError("kernel size must be odd so outputs stay centred")
        self.stride = stride
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.conv(x)
        if self.stride > 1:
            mask = downsample_mask(mask, out.shape[-1])
        return out * mask.to(out.dtype), mask


def downsample_mask(mask: torch.Tensor, length: int) -> torch.Tensor:
    """Nearest-neighbour resampling of a (B, 1, T) boolean mask to ``length`` positions."""
    return F.interpolate(mask.float(), size=length, mode="nearest").bool()


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel dimension of a (B, C, T) tensor."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(dim=1, keepdim=True)
        var = (x - mu).pow(2).mean(dim=1, keepdim=True)
        return (x - mu) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def sinusoid_encoding(length: int, dim: int) -> torch.Tensor:
    """Absolute sinusoidal position encoding, (1, dim, length)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    enc = torch.zeros(length, dim)
    enc[:, 0::2] = torch.sin(pos * div)
    enc[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return enc.T.unsqueeze(0)


def band_attention_mask(key_mask: torch.Tensor, window: int | None) -> torch.Tensor:
    """(B, 1, T, T) boolean attention mask: valid keys within ``window // 2`` positions (all if None).

    A query may always attend to itself, so rows of padded queries are never empty (no NaN).
    """
    length = key_mask.shape[-1]
    allowed = key_mask[:, :, None, :].expand(-1, -1, length, -1)
    idx = torch.arange(length, device=key_mask.device)
    if window is not None:
        band = (idx[:, None] - idx[None, :]).abs() <= window // 2
        allowed = allowed & band
    return allowed | torch.eye(length, dtype=torch.bool, device=key_mask.device)


class MaskedConvAttention(nn.Module):
    """Multi-head self-attention whose q/k/v first pass a depthwise conv (strided when downsampling)."""

    def __init__(self, dim: int, heads: int, stride: int, window: int | None, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.window, self.stride, self.dropout = heads, window, stride, dropout
        self.qkv_convs = nn.ModuleList(
            [MaskedConv1d(dim, dim, 3, stride=stride, groups=dim, bias=False) for _ in range(3)]
        )
        self.qkv_norms = nn.ModuleList([ChannelLayerNorm(dim) for _ in range(3)])
        self.qkv_proj = nn.ModuleList([nn.Conv1d(dim, dim, 1) for _ in range(3)])
        self.out_proj = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        qkv = []
        out_mask = mask
        for conv, norm, proj in zip(self.qkv_convs, self.qkv_norms, self.qkv_proj, strict=True):
            h, out_mask = conv(x, mask)
            qkv.append(proj(norm(h)))
        b, c, t = qkv[0].shape
        q, k, v = (z.view(b, self.heads, c // self.heads, t).transpose(2, 3) for z in qkv)
        attn_mask = band_attention_mask(out_mask, self.window)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        out = out.transpose(2, 3).reshape(b, c, t)
        return self.out_proj(out) * out_mask.to(out.dtype), out_mask


class TransformerBlock(nn.Module):
    """Pre-LN transformer block on (B, C, T); stride 2 halves T (max-pooled skip connection)."""

    def __init__(self, dim: int, heads: int, stride: int, window: int | None, mlp_ratio: int, dropout: float):
        super().__init__()
        self.ln_attn = ChannelLayerNorm(dim)
        self.attn = MaskedConvAttention(dim, heads, stride, window, dropout)
        self.skip = nn.MaxPool1d(3, stride=stride, padding=1) if stride > 1 else nn.Identity()
        self.ln_mlp = ChannelLayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Conv1d(dim, dim * mlp_ratio, 1),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Conv1d(dim * mlp_ratio, dim, 1),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attn, out_mask = self.attn(self.ln_attn(x), mask)
        m = out_mask.to(x.dtype)
        out = self.skip(x) * m + attn
        out = out + self.mlp(self.ln_mlp(out)) * m
        return out, out_mask
