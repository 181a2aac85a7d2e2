"""Masked 1-D building blocks (ActionFormer-style): convolutions, channel LayerNorm, transformer blocks.

Tensors are channels-first ``(B, C, T)``; masks are boolean ``(B, 1, T)`` with True at valid snippets.
Every block zeroes its output at padded positions so padding never leaks into valid ones.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn


class MaskedConv1d(nn.Module):
    """Conv1d whose output is masked; with stride s the mask is downsampled by nearest neighbour."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = True
    ):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError("kernel size must be odd so outputs stay centred")
        self.stride = stride
        self.conv = nn.Conv1d(
            c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=bias
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.conv(x)
        if self.stride > 1:
            mask = downsample_mask(mask, out.shape[-1])
        return out * mask.to(out.dtype), mask


def downsample_mask(mask: torch.Tensor, length: int) -> torch.Tensor:
    """Nearest-neighbour resampling of a (B, 1, T) boolean mask to ``length`` positions."""
    return F.interpolate(mask.float(), size=length, mode="nearest").bool()


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel dimension of a (B, C, T) tensor (one fused kernel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def sinusoid_encoding(length: int, dim: int) -> torch.Tensor:
    """Absolute sinusoidal position encoding, (1, dim, length)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    enc = torch.zeros(length, dim)
    enc[:, 0::2] = torch.sin(pos * div)
    enc[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return enc.T.unsqueeze(0)


@functools.lru_cache(maxsize=64)
def _band(length: int, window: int | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The (T, T) band of allowed key offsets, and the identity (each query may see itself)."""
    idx = torch.arange(length, device=device)
    eye = idx[:, None] == idx[None, :]
    if window is None:
        return torch.ones(length, length, dtype=torch.bool, device=device), eye
    return (idx[:, None] - idx[None, :]).abs() <= window // 2, eye


def band_attention_mask(key_mask: torch.Tensor, window: int | None) -> torch.Tensor:
    """(B, 1, T, T) boolean attention mask: valid keys within ``window // 2`` positions (all if None).

    A query may always attend to itself, so rows of padded queries are never empty (no NaN).
    """
    band, eye = _band(key_mask.shape[-1], window, key_mask.device)
    return (key_mask[:, :, None, :] & band) | eye


class MaskedConvAttention(nn.Module):
    """Multi-head self-attention whose q/k/v first pass a depthwise conv (strided when downsampling).

    q, k and v are computed together: one depthwise conv over three copies of the input, one LayerNorm,
    one grouped 1x1 projection, instead of three of each (fewer kernels per step).
    """

    def __init__(self, dim: int, heads: int, stride: int, window: int | None, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.dim, self.heads, self.window, self.stride, self.dropout = dim, heads, window, stride, dropout
        self.qkv_conv = MaskedConv1d(3 * dim, 3 * dim, 3, stride=stride, groups=3 * dim, bias=False)
        self.qkv_norm_weight = nn.Parameter(torch.ones(3, 1, dim))
        self.qkv_norm_bias = nn.Parameter(torch.zeros(3, 1, dim))
        self.qkv_proj = nn.Conv1d(3 * dim, 3 * dim, 1, groups=3)
        self.out_proj = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, out_mask = self.qkv_conv(x.repeat(1, 3, 1), mask)
        b, _, t = h.shape
        h = F.layer_norm(h.view(b, 3, self.dim, t).transpose(2, 3), (self.dim,))  # (B, 3, T, C)
        h = (h * self.qkv_norm_weight + self.qkv_norm_bias).transpose(2, 3).reshape(b, 3 * self.dim, t)
        h = self.qkv_proj(h).view(b, 3, self.heads, self.dim // self.heads, t).transpose(3, 4)
        q, k, v = h.unbind(1)  # (B, heads, T, C/heads)
        attn_mask = band_attention_mask(out_mask, self.window)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        out = out.transpose(2, 3).reshape(b, self.dim, t)
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
