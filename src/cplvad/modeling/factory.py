"""Build a CPL-VAD model, and save / load it as a self-describing directory.

A model directory holds ``model.pt`` (a state dict, loadable with ``weights_only=True``; the frozen CLIP
text encoder is left out, its encoded prompts are kept in the cache buffer), ``config.json`` (the full
config) and ``meta.json`` (classes, widths, stage, provenance), so it can be rebuilt without the
original params file and scores features without loading CLIP.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from cplvad import __version__
from cplvad.clip import create_clip
from cplvad.config import Config, config_from_dict, upgrade_written_config
from cplvad.errors import DataError
from cplvad.io import load_torch, write_json
from cplvad.modeling.dual_branch import CPLVAD, LevelFusion
from cplvad.modeling.prompts import FrozenTextEncoder, PromptLearner
from cplvad.storage.atomic import atomic_path

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"
META_FILE = "meta.json"
MODEL_FILES = (WEIGHTS_FILE, CONFIG_FILE, META_FILE)
CALIBRATION_KEY = "calibration"
"""The record in ``meta.extra`` of the calibrated threshold (``train.calibration``), read by scoring,
evaluation, monitoring, feedback and the model card."""
FORMAT_VERSION = 1
MODEL_REMEDY = "retrain it (cplvad train) or restore the model directory"
_FROZEN_PREFIX = "prompts.encoder."


@dataclass
class ModelMeta:
    classes: list[str]
    feature_dim: int
    text_width: int
    embed_dim: int
    stage: int
    dataset: str = ""
    clip_weights_sha256: str | None = None
    train_samples: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    """Stage-specific records (e.g. the calibrated threshold); free-form JSON."""
    format: int = FORMAT_VERSION
    cplvad_version: str = __version__


def build_model(
    config: Config, meta: ModelMeta, encoder: FrozenTextEncoder | None = None, tokenizer: Any = None
) -> CPLVAD:
    cfg = config.model
    prompts = PromptLearner(
        meta.classes,
        cfg.levels,
        cfg.prompt_type_tokens,
        cfg.prompt_level_tokens,
        cfg.prompt_init_std,
        meta.text_width,
        meta.embed_dim,
        encoder,
        tokenizer,
    )
    model = CPLVAD(cfg, meta.feature_dim, prompts, meta.embed_dim)
    model.fusion = LevelFusion(config.eval.level_fusion, config.eval.level_upsampling)
    return model


def create_model(
    config: Config, classes: Sequence[str], feature_dim: int, stage: int, dataset: str = ""
) -> tuple[CPLVAD, ModelMeta]:
    """A fresh, trainable model with the configured (frozen) CLIP text encoder; seeded by config.seed."""
    torch.manual_seed(config.seed)
    clip = create_clip(config.clip)
    encoder = FrozenTextEncoder(clip.model)
    meta = ModelMeta(
        classes=list(classes),
        feature_dim=feature_dim,
        text_width=encoder.width,
        embed_dim=encoder.embed_dim,
        stage=stage,
        dataset=dataset,
        clip_weights_sha256=clip.weights_sha256,
    )
    return build_model(config, meta, encoder, clip.tokenizer), meta


def trainable_state(model: CPLVAD) -> dict[str, torch.Tensor]:
    """The state dict without the frozen CLIP text encoder."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(_FROZEN_PREFIX)}


def load_trainable_state(model: CPLVAD, state: dict[str, torch.Tensor], source: str) -> None:
    try:
        result = model.load_state_dict(state, strict=False)
    except (RuntimeError, TypeError, AttributeError) as exc:  # shapes, or values that are not tensors
        detail = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{source}: weights do not fit the model described by its config.json ({detail}); "
            "retrain or restore it"
        ) from None
    missing = [k for k in result.missing_keys if not k.startswith(_FROZEN_PREFIX)]
    if missing or result.unexpected_keys:
        raise DataError(
            f"{source}: weights do not fit the model described by its config.json "
            f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}); the directory mixes files "
            "from different runs: retrain or restore it"
        )


def save_model(model: CPLVAD, config: Config, meta: ModelMeta, out_dir: str | Path) -> Path:
    """Write the model directory (each file atomically); the prompt cache is filled first."""
    out_dir = Path(out_dir)
    model.eval()
    model.prompts()  # fills the cache of encoded prompts
    with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
        torch.save({k: v.detach().cpu() for k, v in trainable_state(model).items()}, tmp)
    write_json(out_dir / CONFIG_FILE, config.to_dict())
    write_json(out_dir / META_FILE, asdict(meta))
    return out_dir


def is_model_dir(path: str | Path) -> bool:
    path = Path(path)
    return all((path / f).is_file() for f in MODEL_FILES)


def read_model_config(model_dir: str | Path) -> tuple[Config, ModelMeta]:
    model_dir = Path(model_dir)
    if not is_model_dir(model_dir):
        raise DataError(
            f"{model_dir} is not a cplvad model directory (needs {WEIGHTS_FILE}, {CONFIG_FILE}, {META_FILE}); "
            "pass the --out folder of `cplvad train`"
        )
    try:
        config = config_from_dict(
            upgrade_written_config(json.loads((model_dir / CONFIG_FILE).read_text())),
            str(model_dir / CONFIG_FILE),
        )
        meta = ModelMeta(**json.loads((model_dir / META_FILE).read_text()))
    except (ValueError, TypeError) as exc:  # JSON, UTF-8 or shape errors of config.json / meta.json
        raise DataError(f"{model_dir}: unreadable model description ({exc}); retrain or restore it") from None
    if meta.format != FORMAT_VERSION:
        raise DataError(f"{model_dir}: model format {meta.format}, this cplvad reads format {FORMAT_VERSION}")
    return config, meta


def update_meta(model_dir: str | Path, **extra: Any) -> ModelMeta:
    """Add records to ``meta.extra`` of a saved model (e.g. the calibrated threshold), atomically."""
    _, meta = read_model_config(model_dir)
    meta.extra.update(extra)
    write_json(Path(model_dir) / META_FILE, asdict(meta))
    return meta


def load_model(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[CPLVAD, Config, ModelMeta]:
    """Rebuild a saved model for scoring (eval mode, no CLIP needed)."""
    config, meta = read_model_config(model_dir)
    model = build_model(config, meta)
    state = load_torch(Path(model_dir) / WEIGHTS_FILE, "a cplvad model file", MODEL_REMEDY)
    if not isinstance(state, dict):
        raise DataError(
            f"{Path(model_dir) / WEIGHTS_FILE} is not a cplvad model file (no state dict); {MODEL_REMEDY}"
        )
    load_trainable_state(model, state, str(model_dir))
    if not bool(model.prompts.cache_valid):
        raise DataError(f"{model_dir}: the saved model has no encoded prompts; save it with cplvad again")
    return model.to(device).eval(), config, meta


def check_classes(
    meta: ModelMeta, classes: Sequence[str], model_dir: str | Path, dataset_source: str
) -> None:
    if list(classes) != meta.classes:
        raise DataError(
            f"model {model_dir} was trained on classes {meta.classes} but {dataset_source} has {list(classes)}; "
            "use a model trained on this dataset (same classes, same order)"
        )
