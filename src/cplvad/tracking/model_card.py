"""The model card of a registered version (its description in the MLflow registry) and the recipe
fingerprint that finds a model's validation twin.

The card is written from the files a pipeline execution leaves (the final model's ``meta.json`` and
``config.json``, the pseudo labels' CAR settings, the test metrics), so the DVC stages, ``cplvad run`` and
the Kubeflow ``register`` step write the same card whatever parameters each of them was handed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cplvad.io import load_torch
from cplvad.modeling.factory import CALIBRATION_KEY, WEIGHTS_FILE, read_model_config
from cplvad.pseudo.labels import PseudoLabels
from cplvad.train.validation import VALIDATION_KEY

DEMO_PREFIX = "cplvad-demo"
"""The built-in demo datasets are named ``cplvad-demo`` (features) and ``cplvad-demo-videos``."""
RECIPE_SECTIONS = ("seed", "clip", "model", "train", "stage2")
"""The final model's ``config.json`` sections that make its recipe (with the CAR settings of its pseudo
labels); ``RUNTIME_KEYS`` are left out."""
RUNTIME_KEYS = (
    "train.validation_fraction",
    "train.device",
    "train.amp",
    "train.cuda_graphs",
    "train.checkpoint_every",
    "train.checkpoint_seconds",
)
"""Settings that do not make a different recipe: where and how fast it trains, and whether videos are held
out for validation (a model trained on every video and its twin with a held-out split share a recipe)."""


@dataclass
class ModelFacts:
    """What a card says about one trained model, read from its files (:func:`read_facts`)."""

    stage: int
    classes: list[str]
    feature_dim: int
    train_samples: int
    clip: dict[str, Any]
    training: dict[str, Any]
    car: dict[str, Any]
    seed: int
    recipe: str
    calibration: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    model_sha256: str = ""
    """sha256 of ``model.pt`` (what ``cplvad predict`` reports as the weights' checksum)."""
    weights_digest: str = ""
    """sha256 over the weights themselves (names, dtypes, shapes, values): equal for equal weights even
    when the files differ (PyTorch writes the file name it saved to into the archive)."""


def read_facts(model_dir: str | Path, pseudo: str | Path | None = None) -> ModelFacts:
    """The facts of the model in ``model_dir``; ``pseudo``: the pseudo labels it was trained on (stage 2),
    whose CAR settings are the ones that were applied."""
    config, meta = read_model_config(model_dir)
    car = (
        PseudoLabels.load(pseudo).car
        if pseudo is not None and Path(pseudo).is_file()
        else config.car.model_dump(mode="json")
    )
    sections = config.to_dict()
    return ModelFacts(
        stage=meta.stage,
        classes=list(meta.classes),
        feature_dim=meta.feature_dim,
        train_samples=meta.train_samples,
        clip={**sections["clip"], "weights_sha256": meta.clip_weights_sha256},
        training={k: sections["train"][k] for k in ("epochs", "batch_size", "lr", "validation_fraction")},
        car=car,
        seed=config.seed,
        recipe=recipe_fingerprint(sections, car),
        calibration=dict(meta.extra.get(CALIBRATION_KEY) or {}),
        validation=dict(meta.extra.get(VALIDATION_KEY) or {}),
        model_sha256=_sha256(Path(model_dir) / WEIGHTS_FILE),
        weights_digest=_weights_digest(Path(model_dir) / WEIGHTS_FILE),
    )


def recipe_fingerprint(sections: dict[str, Any], car: dict[str, Any]) -> str:
    """16 hex digits over the recipe: ``RECIPE_SECTIONS`` of a model's config and its CAR settings, without
    ``RUNTIME_KEYS``. A model trained on every training video and one trained with a held-out split get the
    same fingerprint when nothing else differs: the second is the first's validation twin."""
    recipe = {name: sections[name] for name in RECIPE_SECTIONS}
    recipe["train"] = dict(recipe["train"])
    for key in RUNTIME_KEYS:
        section, name = key.split(".")
        recipe[section].pop(name, None)
    recipe["car"] = car
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _weights_digest(path: Path) -> str:
    state = load_torch(path, "a cplvad model file", "train the model again")
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class CardContext:
    """Where a model comes from: data, code, run and its test metrics."""

    dataset: str
    data_checksum: str
    data_source: str
    metrics: dict[str, float | None]
    train_videos: int | None = None
    test_videos: int | None = None
    commit: str | None = None
    run_id: str | None = None
    experiment: str | None = None


def model_card(facts: ModelFacts, ctx: CardContext) -> str:
    """The Markdown description of a registered version: data, code, recipe, CAR rule, validation and test
    metrics, calibrated threshold and what the numbers do not tell."""
    v, cal = facts.validation, facts.calibration
    lines = [
        f"# CPL-VAD anomaly detector (stage {facts.stage})",
        "",
        "## Data",
        f"- dataset `{ctx.dataset}`, checksum `{ctx.data_checksum}` (manifest, lists, annotations)",
        f"- source: {ctx.data_source}",
        f"- {ctx.train_videos if ctx.train_videos is not None else 'unknown'} training videos "
        f"({facts.train_samples} samples trained on), "
        f"{ctx.test_videos if ctx.test_videos is not None else 'unknown'} test videos",
        "",
        "## Code and run",
        f"- git commit `{ctx.commit or 'unknown'}`",
        f"- MLflow run `{ctx.run_id or 'unknown'}`"
        + (f", DVC experiment `{ctx.experiment}`" if ctx.experiment else ""),
        "",
        "## Recipe",
        f"- recipe fingerprint `{facts.recipe}` (shared with its validation twin, if any), seed {facts.seed}",
        f"- CLIP `{facts.clip.get('model')}`, weights `{facts.clip.get('pretrained')}` "
        f"(sha256 `{(facts.clip.get('weights_sha256') or 'none')[:12]}`); features of width {facts.feature_dim}",
        "- training: " + ", ".join(f"{k} {val}" for k, val in facts.training.items()),
        f"- CAR: {'on, rule `' + str(facts.car.get('rule')) + '`' if facts.car.get('enabled') else 'off'}",
        f"- classes ({len(facts.classes)}): {', '.join(facts.classes)}",
        "",
        "## Validation (decides promotion)",
    ]
    if v:
        lines.append(
            f"- seed {facts.seed}: video AUC {v.get('video_auc')}, video AP {v.get('video_ap', 'n/a')} on "
            f"{v.get('videos')} held-out training videos (fraction {v.get('fraction')}, split `{v.get('split')}`)"
        )
    else:
        lines.append(
            "- none: trained on every training video; `cplvad promote` needs a validation twin (the same recipe "
            "with `train.validation_fraction` > 0, registered on the same data)"
        )
    lines += ["", "## Test (a report; never decides)"]
    shown = {k: val for k, val in ctx.metrics.items() if val is not None}
    lines += [f"- seed {facts.seed}: " + ", ".join(f"{k} {val:.2f}" for k, val in shown.items())]
    lines += ["", "## Threshold"]
    if cal:
        lines.append(
            f"- {cal.get('threshold'):.4f}, calibrated for a snippet false-alarm rate of {cal.get('false_alarm_rate')} "
            f"on {cal.get('normal_videos')} normal training videos"
        )
    else:
        lines.append("- not calibrated")
    lines += ["", "## Known limits", *[f"- {text}" for text in known_limits(facts, ctx)]]
    return "\n".join(lines) + "\n"


def known_limits(facts: ModelFacts, ctx: CardContext) -> list[str]:
    limits = [
        f"scores only (T, {facts.feature_dim}) snippet features of the same CLIP and weights; other features "
        "give meaningless scores",
        "trained from video-level labels: frame-level quality is known only from the test set, which "
        "decides nothing",
        "the threshold's false-alarm rate holds for footage like the normal training videos; re-calibrate "
        "for another camera or scene",
        f"one seed ({facts.seed}): how far seeds alone move the metrics is not measured here "
        "(`cplvad run --seeds`)",
    ]
    if facts.validation:
        limits.append(
            f"validation is video-level on {facts.validation.get('videos')} videos: a small sample, a few "
            "points are noise"
        )
    if ctx.dataset.startswith(DEMO_PREFIX):
        limits.insert(
            0, "trained on synthetic demo videos: a pipeline check, not a detector for real footage"
        )
    return limits
