"""C-branch text side: multi-level learnable prompts through the frozen CLIP text encoder.

Prompt of class m at level i: ``[SOT] a video of <class words> [N_P or A_P] [Q_P^i] [EOT]``. N_P (normal
class) and A_P (every abnormal class) are learnable token embeddings shared by all levels; Q_P^i are
learnable tokens shared by all classes of level i. Gradients reach the learnable tokens, never CLIP.

Under CLIP's causal mask the EOT output depends only on positions up to EOT, so nothing after it is run
(not 77 positions). The same mask makes the class part of a prompt (``[SOT] ... [N_P or A_P]``, ~80 % of
its positions) identical at every level, so it is run once per class; only ``[Q_P^i] [EOT]`` runs per level
and attends to the class part's keys and values. At the paper settings this is 3x fewer text tokens.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PROMPT_TEMPLATE = "a video of {}"


def class_words(name: str) -> str:
    """``RoadAccidents`` -> ``road accidents``; ``car_accident`` -> ``car accident``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.replace("_", " ").replace("-", " "))
    return " ".join(spaced.lower().split())


@functools.lru_cache(maxsize=8)
def _causal_mask(length: int, device: torch.device) -> torch.Tensor:
    return torch.full((length, length), float("-inf"), device=device).triu_(1)


@dataclass
class PromptTokens:
    """Token embeddings of all L x M prompts, stored once per class and once per level.

    Prompt (level i, class m) = ``prefix[m, :prefix_len[m]]`` followed by ``suffix[i]`` (whose last
    token is EOT).
    """

    prefix: torch.Tensor
    """(M, Sp, width): ``[SOT] a video of <words> [N_P or A_P]``, right-padded to the longest class."""
    prefix_len: torch.Tensor
    """(M,) valid prefix positions per class."""
    suffix: torch.Tensor
    """(L, Ss, width): ``[Q_P^i] [EOT]``."""

    def sequences(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every prompt written out: (L, M, S, width) embeddings and the EOT position of each class (M,).

        S = the longest prompt; positions after a prompt's EOT repeat the EOT (never seen under the
        causal mask).
        """
        ss, sp = self.suffix.shape[1], self.prefix.shape[1]
        pos = torch.arange(sp + ss, device=self.prefix.device)[None, :]  # (1, S)
        in_prefix = pos < self.prefix_len[:, None]  # (M, S)
        from_prefix = self.prefix[:, pos[0].clamp(max=sp - 1)]  # (M, S, W)
        from_suffix = self.suffix[:, (pos - self.prefix_len[:, None]).clamp(0, ss - 1)]  # (L, M, S, W)
        return torch.where(
            in_prefix[None, ..., None], from_prefix[None], from_suffix
        ), self.prefix_len + ss - 1


class FrozenTextEncoder(nn.Module):
    """The text tower of an open_clip CLIP model, frozen, fed with token embeddings."""

    def __init__(self, clip_model: nn.Module):
        super().__init__()
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.transformer = clip_model.transformer
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        for p in self.parameters():
            p.requires_grad_(False)
        self.shares_prefixes = all(_plain_self_attention(block) for block in self.transformer.resblocks)
        """Whether ``encode_prompts`` can run shared prompt prefixes once (standard CLIP text blocks)."""

    @property
    def width(self) -> int:
        return int(self.token_embedding.weight.shape[1])

    @property
    def embed_dim(self) -> int:
        proj = self.text_projection
        return int(proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1])

    @property
    def context_length(self) -> int:
        return int(self.positional_embedding.shape[0])

    def forward(self, embeddings: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """(P, S, width) token embeddings with EOT at ``eot`` (P,) -> (P, embed_dim) text features."""
        length = embeddings.shape[1]
        dtype = self.transformer.get_cast_dtype()
        x = embeddings.to(dtype) + self.positional_embedding[:length].to(dtype)
        x = self.ln_final(self.transformer(x, attn_mask=_causal_mask(length, x.device)))
        return self._project(x[torch.arange(x.shape[0], device=x.device), eot])

    def encode_prompts(self, tokens: PromptTokens) -> torch.Tensor:
        """All L x M prompts -> (L, M, embed_dim) text features; equal to ``forward`` on ``sequences()``.

        Prefix tokens run once per class, suffix tokens once per prompt; each block normalises and
        projects all of them as one batch, only attention is split (suffix queries see their class's
        valid prefix keys and the suffix causally).
        """
        if not self.shares_prefixes:
            sequences, eot = tokens.sequences()
            levels, classes = sequences.shape[:2]
            return self(sequences.flatten(0, 1), eot.repeat(levels)).view(levels, classes, -1)
        (classes, sp, width), (levels, ss, _) = tokens.prefix.shape, tokens.suffix.shape
        dtype = self.transformer.get_cast_dtype()
        pos = self.positional_embedding.to(dtype)
        suffix_pos = pos[tokens.prefix_len[:, None] + torch.arange(ss, device=pos.device)]  # (M, Ss, W)
        x = torch.cat(
            [
                (tokens.prefix.to(dtype) + pos[:sp]).reshape(-1, width),
                (tokens.suffix.to(dtype)[:, None] + suffix_pos[None]).reshape(-1, width),
            ]
        )
        layout = _SharedLayout(classes, sp, levels, ss, _suffix_mask(tokens.prefix_len, sp, ss, levels))
        for block in self.transformer.resblocks:
            x = x + block.ls_1(_shared_attention(block.attn, block.ln_1(x), layout))
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
        eot = x[classes * sp :].view(levels, classes, ss, width)[:, :, -1]
        return self._project(self.ln_final(eot))

    def _project(self, pooled: torch.Tensor) -> torch.Tensor:
        proj = self.text_projection
        return proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj


def _plain_self_attention(block: nn.Module) -> bool:
    """An open_clip ``ResidualAttentionBlock`` with packed, dropout-free ``nn.MultiheadAttention``."""
    attn = getattr(block, "attn", None)
    return (
        all(hasattr(block, name) for name in ("ln_1", "ls_1", "ln_2", "mlp", "ls_2"))
        and not hasattr(block, "ln_1_kv")
        and isinstance(attn, nn.MultiheadAttention)
        and attn.in_proj_weight is not None
        and attn.dropout == 0.0
    )


@dataclass(frozen=True)
class _SharedLayout:
    classes: int
    prefix: int
    levels: int
    suffix: int
    suffix_mask: torch.Tensor
    """(L * M, 1, Ss, Sp + Ss) True where a suffix query may attend."""


def _suffix_mask(prefix_len: torch.Tensor, sp: int, ss: int, levels: int) -> torch.Tensor:
    keys = torch.arange(sp, device=prefix_len.device)[None, None, :] < prefix_len[:, None, None]  # (M, 1, Sp)
    causal = torch.ones(ss, ss, dtype=torch.bool, device=prefix_len.device).tril()
    mask = torch.cat([keys.expand(-1, ss, -1), causal.expand(len(prefix_len), -1, -1)], dim=2)
    return mask.repeat(levels, 1, 1)[:, None]


def _shared_attention(attn: nn.MultiheadAttention, h: torch.Tensor, layout: _SharedLayout) -> torch.Tensor:
    """``attn`` over the token batch of ``encode_prompts``: prefix rows causal per class, suffix rows on
    their class's prefix keys/values (computed once, shared by the levels) and their own, causally."""
    heads = attn.num_heads
    n_prefix = layout.classes * layout.prefix
    qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).view(h.shape[0], 3, heads, -1)

    def split(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            t[:n_prefix].view(layout.classes, layout.prefix, heads, -1).transpose(1, 2),
            t[n_prefix:].view(layout.levels * layout.classes, layout.suffix, heads, -1).transpose(1, 2),
        )

    (qp, qs), (kp, ks), (vp, vs) = (split(t) for t in qkv.unbind(1))
    out_p = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True)
    k = torch.cat([kp.repeat(layout.levels, 1, 1, 1), ks], dim=2)
    v = torch.cat([vp.repeat(layout.levels, 1, 1, 1), vs], dim=2)
    out_s = F.scaled_dot_product_attention(qs, k, v, attn_mask=layout.suffix_mask)
    out = torch.cat([out_p.transpose(1, 2).flatten(0, 1), out_s.transpose(1, 2).flatten(0, 1)])
    return attn.out_proj(out.flatten(1))


class LevelAdapter(nn.Module):
    """Residual adapter t + MLP(t) giving each pyramid level its own view of the class texts."""

    def __init__(self, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t + self.mlp(t)


class PromptLearner(nn.Module):
    """Learnable prompts for M classes x L levels; returns (L, M, embed_dim) class text features.

    In eval mode the encoded prompts are cached (they do not depend on the video), and the cache is
    part of the state dict, so a saved model scores videos without loading CLIP at all.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        levels: int,
        type_tokens: int,
        level_tokens: int,
        init_std: float,
        text_width: int,
        embed_dim: int,
        encoder: FrozenTextEncoder | None = None,
        tokenizer: Callable[..., torch.Tensor] | None = None,
    ):
        super().__init__()
        self.levels, self.n_classes = levels, len(class_names)
        self.type_tokens = nn.Parameter(torch.randn(2, type_tokens, text_width) * init_std)
        self.level_tokens = nn.Parameter(torch.randn(levels, level_tokens, text_width) * init_std)
        self.adapters = nn.ModuleList([LevelAdapter(embed_dim) for _ in range(levels)])
        self.register_buffer("cached_text", torch.zeros(levels, len(class_names), embed_dim))
        self.register_buffer("cache_valid", torch.zeros((), dtype=torch.bool))
        self.encoder = encoder
        if encoder is not None:
            if tokenizer is None:
                raise ValueError("a tokenizer is needed with a text encoder")
            self._build_templates(class_names, tokenizer)

    def _build_templates(self, class_names: Sequence[str], tokenizer: Callable[..., torch.Tensor]) -> None:
        """Frozen parts of every prompt (``[SOT] a video of <words>``, ``[EOT]``) and where the type tokens
        go, as index tensors, so assembling all prompts takes a few kernels whatever M is."""
        assert self.encoder is not None
        ids = tokenizer([PROMPT_TEMPLATE.format(class_words(n)) for n in class_names])
        words_end = ids.argmax(dim=-1)  # EOT has the largest id in CLIP's vocabulary: SOT + words before it
        n_type, n_level = self.type_tokens.shape[1], self.level_tokens.shape[1]
        prefix_len = words_end + n_type
        longest = int(prefix_len.max()) + n_level + 1
        if longest > self.encoder.context_length:
            raise ValueError(
                f"prompts need {longest} tokens, CLIP's context is {self.encoder.context_length}"
            )
        pos = torch.arange(int(prefix_len.max()))[None, :]
        offset = pos - words_end[:, None]  # position relative to the first type token
        is_type = (offset >= 0) & (offset < n_type)
        kind = (torch.arange(len(class_names)) > 0).long()[:, None]  # N_P for the normal class, A_P otherwise
        for name, value in {
            "prefix_ids": torch.where(offset < 0, ids[:, : pos.shape[1]], torch.zeros_like(offset)),
            "type_index": torch.where(is_type, kind * n_type + offset, 0),
            "is_type": is_type,
            "prefix_len": prefix_len,
            "eot_id": ids[0, words_end[0]].reshape(1),
        }.items():
            self.register_buffer(name, value, persistent=False)

    def tokens(self) -> PromptTokens:
        """Token embeddings of all L x M prompts (class prefixes and level suffixes)."""
        if self.encoder is None:
            raise RuntimeError("this model was loaded without CLIP; it can only score (eval mode)")
        frozen = self.encoder.token_embedding(self.prefix_ids)  # (M, Sp, W)
        types = self.type_tokens.flatten(0, 1)[self.type_index].to(frozen.dtype)  # (M, Sp, W)
        eot = self.encoder.token_embedding(self.eot_id).expand(self.levels, 1, -1)
        return PromptTokens(
            prefix=torch.where(self.is_type[..., None], types, frozen),
            prefix_len=self.prefix_len,
            suffix=torch.cat([self.level_tokens.to(frozen.dtype), eot], dim=1),
        )

    def encode(self) -> torch.Tensor:
        """Run all L x M prompts through the frozen encoder -> (L, M, embed_dim)."""
        return self.encoder.encode_prompts(self.tokens()).float()

    def train(self, mode: bool = True) -> PromptLearner:
        if mode:
            self.cache_valid.fill_(False)
        return super().train(mode)

    def forward(self) -> torch.Tensor:
        if self.training:
            text = self.encode()
        else:
            if not bool(self.cache_valid):
                with torch.no_grad():
                    self.cached_text.copy_(self.encode())
                self.cache_valid.fill_(True)
            text = self.cached_text
        return torch.stack([adapter(text[i]) for i, adapter in enumerate(self.adapters)])
