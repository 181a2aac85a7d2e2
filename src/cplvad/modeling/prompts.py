"""C-branch text side: multi-level learnable prompts through the frozen CLIP text encoder.

Prompt of class m at level i: ``[SOT] a video of <class words> [N_P or A_P] [Q_P^i] [EOT]``. N_P (normal
class) and A_P (every abnormal class) are learnable token embeddings shared by all levels; Q_P^i are
learnable tokens shared by all classes of level i. Gradients reach the learnable tokens, never CLIP.

Under CLIP's causal mask the EOT output depends only on positions up to EOT, so sequences are cut right
after the last EOT instead of running all 77 positions.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import torch
from torch import nn

PROMPT_TEMPLATE = "a video of {}"


def class_words(name: str) -> str:
    """``RoadAccidents`` -> ``road accidents``; ``car_accident`` -> ``car accident``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.replace("_", " ").replace("-", " "))
    return " ".join(spaced.lower().split())


@functools.lru_cache(maxsize=8)
def _causal_mask(length: int, device: torch.device) -> torch.Tensor:
    return torch.full((length, length), float("-inf"), device=device).triu_(1)


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
        pooled = x[torch.arange(x.shape[0], device=x.device), eot]
        proj = self.text_projection
        return proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj


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
        """Frozen parts of every prompt (``[SOT] a video of <words>``, ``[EOT]``) and where the learnable
        tokens go, as index tensors, so assembling all prompts takes a few kernels whatever M is."""
        assert self.encoder is not None
        ids = tokenizer([PROMPT_TEMPLATE.format(class_words(n)) for n in class_names])
        eot_in = ids.argmax(dim=-1)  # EOT has the largest id in CLIP's vocabulary
        n_type, n_level = self.type_tokens.shape[1], self.level_tokens.shape[1]
        prefix = eot_in  # SOT + words
        eot = prefix + n_type + n_level
        length = int(eot.max()) + 1
        if length > self.encoder.context_length:
            raise ValueError(f"prompts need {length} tokens, CLIP's context is {self.encoder.context_length}")
        pos = torch.arange(length)[None, :]
        offset = pos - prefix[:, None]  # position relative to the first learnable token
        is_type = (offset >= 0) & (offset < n_type)
        is_level = (offset >= n_type) & (offset < n_type + n_level)
        kind = (torch.arange(len(class_names)) > 0).long()[:, None]  # N_P for the normal class, A_P otherwise
        template = torch.where(pos < prefix[:, None], ids[:, :length], torch.zeros_like(offset))
        template[torch.arange(len(class_names)), eot] = ids[torch.arange(len(class_names)), eot_in]
        for name, value in {
            "template_ids": template,
            "type_index": torch.where(is_type, kind * n_type + offset, 0),
            "level_index": torch.where(is_level, offset - n_type, 0),
            "is_type": is_type,
            "is_level": is_level,
            "eot": eot,
        }.items():
            self.register_buffer(name, value, persistent=False)

    def embeddings(self) -> torch.Tensor:
        """Token embeddings of all L x M prompts, (L, M, S, width), S = position of the last EOT + 1."""
        if self.encoder is None:
            raise RuntimeError("this model was loaded without CLIP; it can only score (eval mode)")
        frozen = self.encoder.token_embedding(self.template_ids)  # (M, S, W)
        types = self.type_tokens.flatten(0, 1)[self.type_index].to(frozen.dtype)  # (M, S, W)
        levels = self.level_tokens[:, self.level_index].to(frozen.dtype)  # (L, M, S, W)
        words = torch.where(self.is_type[..., None], types, frozen)
        return torch.where(self.is_level[None, ..., None], levels, words[None])

    def encode(self) -> torch.Tensor:
        """Run all L x M prompts through the frozen encoder as one batch -> (L, M, embed_dim)."""
        emb = self.embeddings()
        feats = self.encoder(emb.flatten(0, 1), self.eot.repeat(self.levels))
        return feats.view(self.levels, self.n_classes, -1).float()

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
