"""C-branch text side: multi-level learnable prompts through the frozen CLIP text encoder.

Prompt of class m at level i: ``[SOT] a video of <class words> [N_P or A_P] [Q_P^i] [EOT]``. N_P (normal
class) and A_P (every abnormal class) are learnable token embeddings shared by all levels; Q_P^i are
learnable tokens shared by all classes of level i. Gradients reach the learnable tokens, never CLIP.

Under CLIP's causal mask the EOT output depends only on positions up to EOT, so sequences are cut right
after the last EOT instead of running all 77 positions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
from torch import nn

PROMPT_TEMPLATE = "a video of {}"


def class_words(name: str) -> str:
    """``RoadAccidents`` -> ``road accidents``; ``car_accident`` -> ``car accident``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.replace("_", " ").replace("-", " "))
    return " ".join(spaced.lower().split())


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
        causal = torch.full((length, length), float("-inf"), device=x.device).triu_(1)
        x = self.ln_final(self.transformer(x, attn_mask=causal))
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
        """Frozen parts of every prompt: ``[SOT] a video of <words>`` and ``[EOT]``, and where they go."""
        assert self.encoder is not None
        ids = tokenizer([PROMPT_TEMPLATE.format(class_words(n)) for n in class_names])
        eot_in = ids.argmax(dim=-1)  # EOT has the largest id in CLIP's vocabulary
        n_learn = self.type_tokens.shape[1] + self.level_tokens.shape[1]
        self.prefix_len = [int(e) for e in eot_in]  # SOT + words
        self.eot = torch.tensor([p + n_learn for p in self.prefix_len])
        length = int(self.eot.max()) + 1
        if length > self.encoder.context_length:
            raise ValueError(f"prompts need {length} tokens, CLIP's context is {self.encoder.context_length}")
        template = torch.zeros(len(class_names), length, dtype=torch.long)
        for m, p in enumerate(self.prefix_len):
            template[m, :p] = ids[m, :p]
            template[m, self.eot[m]] = ids[m, eot_in[m]]
        self.register_buffer("template_ids", template, persistent=False)

    def encode(self) -> torch.Tensor:
        """Run all L x M prompts through the frozen encoder as one batch -> (L, M, embed_dim)."""
        if self.encoder is None:
            raise RuntimeError("this model was loaded without CLIP; it can only score (eval mode)")
        emb = self.encoder.token_embedding(self.template_ids)  # (M, S, W), frozen
        emb = emb.unsqueeze(0).expand(self.levels, -1, -1, -1).clone()  # (L, M, S, W)
        n_type = self.type_tokens.shape[1]
        for m, p in enumerate(self.prefix_len):
            kind = self.type_tokens[0 if m == 0 else 1]  # N_P for the normal class, A_P otherwise
            emb[:, m, p : p + n_type] = kind.to(emb.dtype)
            emb[:, m, p + n_type : self.eot[m]] = self.level_tokens.to(emb.dtype)
        eot = self.eot.to(emb.device).repeat(self.levels)
        feats = self.encoder(emb.flatten(0, 1), eot)
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
