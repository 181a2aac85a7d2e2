"""One validated configuration object for every stage, loaded from ``params.yaml``.

Every hyperparameter lives here with its documented default; ``params.yaml`` at the repository root
mirrors these defaults section by section (a test keeps the two equal). Stages read their own section,
which is what DVC tracks as the stage's ``params:`` dependency.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cplvad.errors import ConfigError

DEFAULT_PARAMS_FILE = "params.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class ClipConfig(_Section):
    """Which CLIP to use. Nothing is ever downloaded: weights come from a local file."""

    model: str = "ViT-B-16-quickgelu"
    """An open_clip model name (``open_clip.list_models()``, or one defined in ``config_dir``)."""
    pretrained: str = "none"
    """Path to a local weights file (open_clip state dict or OpenAI TorchScript), or ``none`` (random)."""
    config_dir: str | None = None
    """Optional folder of extra open_clip model-config JSON files (e.g. a tiny model for tests)."""


class ModelConfig(_Section):
    """The dual-branch temporal model (DESIGN §4)."""

    max_len: int = Field(192, ge=32)
    """n: snippets per training sample and per test chunk (longer videos are mean-pooled to n bins)."""
    width: int = Field(512, ge=8)
    """Width of the temporal encoder; features are projected when it differs from the CLIP width."""
    levels: int = Field(6, ge=1, le=8)
    """Pyramid levels: n, n/2, ..., n/2^(levels-1)."""
    stem_blocks: int = Field(2, ge=0)
    heads: int = Field(8, ge=1)
    window: int = Field(8, ge=1)
    """Local attention window (band mask) on all but the coarsest level, which attends globally."""
    mlp_ratio: int = Field(4, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    prompt_type_tokens: int = Field(8, ge=1)
    """Learnable tokens per prompt type (N_P for the normal class, A_P for all abnormal classes)."""
    prompt_level_tokens: int = Field(2, ge=0)
    """Learnable tokens Q_P^i per pyramid level, shared by all classes of that level."""
    prompt_init_std: float = Field(0.01, gt=0.0)
    temperature: float = Field(0.07, gt=0.0)
    prior_prob: float = Field(0.01, gt=0.0, lt=1.0)
    """Initial anomaly probability of the B-branch classifier (bias init)."""

    @field_validator("max_len")
    @classmethod
    def _divisible(cls, v: int) -> int:
        if v % 32:
            raise ValueError("must be a multiple of 32 so every pyramid level has an integer length")
        return v


class TrainConfig(_Section):
    """Optimisation, shared by stage 1 and stage 2."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-4, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    balanced: bool = True
    """Each batch holds as many normal as abnormal videos."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    """Mixed precision (bf16) on CUDA (ignored on CPU)."""
    cuda_graphs: bool = True
    """Replay each training step as one CUDA graph (CUDA and balanced batches only; falls back to eager)."""
    checkpoint_every: int = Field(1, ge=1)
    """Epochs between resumable checkpoints..."""
    checkpoint_seconds: float = Field(60.0, ge=0.0)
    """...and at least this many seconds after the last one (or the start; 0 = no minimum). A checkpoint
    of the paper-sized model is 342 MB (weights + Adam state), ~0.4 s to write: a GPU epoch of ~2 s should
    not pay it every time. An interruption loses at most this long plus one epoch."""


class CarConfig(_Section):
    """Consistency-Aware Refinement of pseudo labels (DESIGN §4, CAR)."""

    enabled: bool = True
    """``false`` = ablation: plain mean over levels, thresholded, no merging, filtering or tails."""
    sigma_min: float = Field(0.05, gt=0.0)
    thresholds: list[float] = Field(default_factory=lambda: [0.5], min_length=1)
    """One threshold θ, or several whose majority vote decides."""
    max_gap: int = Field(2, ge=0)
    min_length: int = Field(3, ge=1)
    flat_ratio: float = Field(0.6, ge=0.0, le=1.0)
    keep_topk: bool = True
    """An abnormal video left with no run keeps its top-k snippets so its label is respected."""

    @field_validator("thresholds")
    @classmethod
    def _in_unit_interval(cls, v: list[float]) -> list[float]:
        if any(not 0.0 < t < 1.0 for t in v):
            raise ValueError("every threshold must lie in (0, 1)")
        return v


class Stage2Config(_Section):
    """Cross supervision with the stage-1 pseudo labels."""

    supervision: Literal["cross", "b_to_c", "c_to_b", "self"] = "cross"
    """Which pseudo labels supervise which branch (paper Table 3)."""
    focal_gamma: float = Field(2.0, ge=0.0)
    focal_alpha: float = Field(0.25, gt=0.0, lt=1.0)
    focal_weight: float = Field(1.0, ge=0.0)


class EvalConfig(_Section):
    smoothing: int = Field(0, ge=0)
    """Moving-average window over snippet scores, per video; 0 = off (the published protocol)."""


class ExtractConfig(_Section):
    """Raw video to CLIP snippet features."""

    frames_per_snippet: int = Field(16, ge=1)
    crops: Literal[1, 10] = 1
    sampling: str = "center"
    """``center`` (middle frame of each snippet) or ``mean:K`` (mean of K evenly spaced frames)."""
    batch_size: int = Field(64, ge=1)
    workers: int = Field(2, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("sampling")
    @classmethod
    def _sampling(cls, v: str) -> str:
        if v == "center" or re.fullmatch(r"mean:[1-9][0-9]*", v):
            return v
        raise ValueError("must be 'center' or 'mean:K' with K a positive integer (e.g. 'mean:4')")


class DemoConfig(_Section):
    """Size of the built-in synthetic demo data."""

    seed: int = 0
    train_normal: int = Field(24, ge=1)
    train_abnormal: int = Field(24, ge=1)
    test_normal: int = Field(12, ge=1)
    test_abnormal: int = Field(12, ge=1)


class PredictConfig(_Section):
    false_alarm_rate: float = Field(0.01, gt=0.0, lt=1.0)
    """Target snippet false-alarm rate on normal training videos for the calibrated threshold."""
    min_event_snippets: int = Field(1, ge=1)
    latency: int = Field(2, ge=0)
    """``--live``: snippets of future context a snippet waits for before it is scored (less than the model's
    max_len). 2 is the smallest that kept frame AUC within 1 point of batch scoring on both demo test sets
    (README, "Live sources"); 8 also gives batch scoring's events on the demo videos."""
    stall_timeout: float = Field(10.0, gt=0.0)
    """``--live``: seconds without data from a source before it counts as dropped (a growing file: ended)."""
    reconnect_attempts: int = Field(5, ge=0)
    """``--live``: consecutive attempts without a frame before a network source is given up (0 = never)."""
    reconnect_backoff: float = Field(1.0, gt=0.0)
    """``--live``: seconds before the first reconnection attempt, doubling after each failed one..."""
    reconnect_backoff_max: float = Field(30.0, gt=0.0)
    """...up to this many."""
    live_part_snippets: int = Field(5625, ge=1)
    """``--live``: snippets per report part (5625 = one hour at 25 fps); bounds the memory of a long session."""
    live_flush_seconds: float = Field(60.0, gt=0.0)
    """``--live``: seconds between rewrites of the current report part."""
    webhook_timeout: float = Field(5.0, gt=0.0)
    """``--webhook``: seconds to wait for each POST..."""
    webhook_retries: int = Field(3, ge=0)
    """...and retries of a failed one (with doubling back-off from 0.5 s)."""


class TrackingConfig(_Section):
    """MLflow. The standard MLFLOW_* environment variables take precedence."""

    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "cplvad"
    artifact_location: str | None = None
    """Where a new experiment stores artifacts, e.g. ``s3://bucket/mlflow`` (default: ./mlruns)."""
    registered_model: str = "cplvad"


class Config(_Section):
    seed: int = 0
    clip: ClipConfig = Field(default_factory=ClipConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    car: CarConfig = Field(default_factory=CarConfig)
    stage2: Stage2Config = Field(default_factory=Stage2Config)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    demo: DemoConfig = Field(default_factory=DemoConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def flat(self) -> dict[str, Any]:
        """``section.key -> value``, e.g. for MLflow params."""
        return dict(_flatten(self.to_dict()))


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _section_fields(path: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Config
    for part in path:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            break
        model = field.annotation
    return sorted(model.model_fields)


def _describe(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(_section_fields(e["loc"][:-1]))
            lines.append(f"  {key}: unknown key; allowed keys here: {allowed}")
        else:
            lines.append(f"  {key} = {e.get('input')!r}: {e['msg']}")
    lines.append("Fix the value in the params file or the --set override.")
    return "\n".join(lines)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> (["train", "lr"], 0.0003); the value is parsed as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set train.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: the value is not valid YAML ({exc})") from exc
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            child = node.setdefault(k, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {k!r} is a value, not a section")
            node = child
        node[keys[-1]] = value
    return data


def read_params_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"params file {path} does not exist; pass --params with an existing file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"params file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def load_config(params: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Load ``params`` (default: ./params.yaml when present, else built-in defaults) plus overrides."""
    if params is None and Path(DEFAULT_PARAMS_FILE).is_file():
        params = DEFAULT_PARAMS_FILE
    data = read_params_file(params) if params is not None else {}
    overrides = list(overrides)
    apply_overrides(data, overrides)
    source = str(params) if params is not None else "the built-in defaults"
    if overrides:
        source += " with --set " + " ".join(overrides)
    return config_from_dict(data, source)


def config_from_dict(data: Mapping[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
