"""CLIP from open_clip: random weights, a local weights file, or weights by open_clip pretrained tag.

``clip.pretrained`` is ``none`` (random weights, e.g. for tests and benchmarks), an open_clip state dict
(loaded with ``weights_only=True``), OpenAI's TorchScript release (``open_clip.load_openai_model``), or an
open_clip tag of the model (``openai``, ``laion2b_s34b_b88k``, ...; see ``cplvad.clip_weights``: cached
by Hugging Face, downloaded once). The weights' identity is always their sha256, whatever named them.
Our own small configs (``src/cplvad/clip_configs``, e.g. ``cplvad-tiny`` for tests and the CPU demo) are
always available; ``clip.config_dir`` adds a user's folder of extra open_clip model configs.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from cplvad.clip_weights import (
    TaggedWeights,
    is_tag,
    known_tags,
    tagged_weights,
    verify,
    warn_on_activation_mismatch,
)
from cplvad.config import ClipConfig
from cplvad.errors import ConfigError

BUILTIN_CONFIGS = Path(__file__).with_name("clip_configs")
RANDOM_WEIGHTS_SEED = 0
"""Random CLIP weights (``pretrained: none``) are drawn from this seed, so extraction, training and
prediction all get the same random CLIP, whatever their own seeds."""


@dataclass
class ClipBundle:
    model: torch.nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    """open_clip's eval transform (PIL image -> normalised tensor)."""
    tokenizer: Callable[..., torch.Tensor]
    embed_dim: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights_sha256: str | None

    @property
    def weights_id(self) -> str:
        """Identity of the weights: their checksum, or the seed of the random initialisation."""
        return (
            f"sha256:{self.weights_sha256}"
            if self.weights_sha256
            else f"random-init-seed-{RANDOM_WEIGHTS_SEED}"
        )


@cache
def register_config_dir(config_dir: str) -> None:
    import open_clip

    path = Path(config_dir)
    if not path.is_dir():
        raise ConfigError(f"clip.config_dir {config_dir!r} is not a folder of open_clip model configs")
    open_clip.add_model_config(path)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.split("/", 1)[-1].startswith("code/") for name in zf.namelist())


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def create_clip(cfg: ClipConfig, device: str | torch.device = "cpu") -> ClipBundle:
    """Build the configured CLIP in eval mode on ``device``."""
    import open_clip

    register_config_dir(str(BUILTIN_CONFIGS))
    if cfg.config_dir:
        register_config_dir(str(Path(cfg.config_dir).resolve()))
    if cfg.model not in open_clip.list_models():
        raise ConfigError(
            f"clip.model {cfg.model!r} is not an open_clip model; see open_clip.list_models() "
            "or add its JSON config with clip.config_dir"
        )
    weights, tagged = _weights_file(cfg)
    sha256 = file_sha256(weights) if weights is not None else None
    if tagged is not None:
        verify(tagged, sha256)  # type: ignore[arg-type]
        warn_on_activation_mismatch(
            bool(open_clip.get_model_config(cfg.model).get("quick_gelu")), tagged, cfg.model, cfg.pretrained
        )
    model = _load_model(cfg, weights, tagged).to(device).eval()
    return _bundle(model, cfg.model, sha256)


def _load_model(cfg: ClipConfig, weights: Path | None, tagged: TaggedWeights | None) -> torch.nn.Module:
    """The open_clip model on the CPU: from a TorchScript (OpenAI) or state-dict file, else random weights
    from a fixed seed (the same random CLIP in every run, so its features are comparable)."""
    import open_clip

    if weights is not None and _is_torchscript(weights):
        return open_clip.load_openai_model(str(weights), precision="fp32", device="cpu")
    if weights is not None:
        return open_clip.create_model(
            cfg.model,
            pretrained=str(weights),
            device="cpu",
            force_preprocess_cfg=tagged.preprocess if tagged else None,
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        return open_clip.create_model(cfg.model, pretrained=None, device="cpu")


def _bundle(model: torch.nn.Module, name: str, sha256: str | None) -> ClipBundle:
    """The model with what the extraction needs to feed it: its preprocessing, tokenizer and sizes."""
    import open_clip

    visual = model.visual
    preprocess = open_clip.image_transform(
        visual.image_size,
        is_train=False,
        mean=getattr(visual, "image_mean", None),
        std=getattr(visual, "image_std", None),
    )
    size = visual.image_size[0] if isinstance(visual.image_size, tuple | list) else visual.image_size
    projection = getattr(model, "text_projection", None)
    return ClipBundle(
        model=model,
        preprocess=preprocess,
        tokenizer=open_clip.get_tokenizer(name),
        embed_dim=int(projection.shape[-1]) if projection is not None else int(visual.output_dim),
        image_size=int(size),
        mean=tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN),
        std=tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD),
        weights_sha256=sha256,
    )


def _weights_file(cfg: ClipConfig) -> tuple[Path | None, TaggedWeights | None]:
    """The weights file ``clip.pretrained`` names (None for random weights) and, for a tag, what it says."""
    value = cfg.pretrained
    if value.lower() == "none":
        return None, None
    if Path(value).is_file():
        return Path(value), None
    if is_tag(cfg.model, value):
        tagged = tagged_weights(cfg.model, value)
        return tagged.path, tagged
    tags = known_tags(cfg.model)
    known = f"its tags: {', '.join(tags)}" if tags else "open_clip has no pretrained weights for it"
    raise ConfigError(
        f"clip.pretrained {value!r} is neither a file nor an open_clip pretrained tag of "
        f"{cfg.model} ({known}); give a weights file, a tag, or 'none'"
    )
