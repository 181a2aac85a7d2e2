"""One validated configuration object for every stage, loaded from ``params.yaml``.

Every hyperparameter lives here with its documented default; ``params.yaml`` at the repository root
mirrors these defaults section by section (a test keeps the two equal). Stages read their own section,
which is what DVC tracks as the stage's ``params:`` dependency.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cplvad.errors import ConfigError
from cplvad.redact import redact

DEFAULT_PARAMS_FILE = "params.yaml"
DEMO_DATASET = "demo"
BENCHMARK_DATASETS = ("ucf-crime", "xd-violence")
"""Built-in benchmarks (metadata in ``cplvad/data/benchmark_metadata``; features from their published release)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class ClipConfig(_Section):
    """Which CLIP to use: random weights, a local weights file, or open_clip's weights by tag."""

    model: str = "ViT-B-16-quickgelu"
    """An open_clip model name (``open_clip.list_models()``, or one defined in ``config_dir``)."""
    pretrained: str = "none"
    """``none`` (random weights), a local weights file (open_clip state dict or OpenAI TorchScript), or an
    open_clip pretrained tag of ``model`` (``openai``, ``laion2b_s34b_b88k``, ...:
    ``open_clip.list_pretrained_tags_by_model``), downloaded once into the Hugging Face cache."""
    config_dir: str | None = None
    """Optional folder of extra open_clip model-config JSON files (e.g. a tiny model for tests)."""


def dataset_kind(dataset: str) -> Literal["demo", "benchmark", "manifest"]:
    """What a ``data.dataset`` value names: the demo, a built-in benchmark, or a manifest file."""
    if dataset == DEMO_DATASET:
        return "demo"
    return "benchmark" if dataset in BENCHMARK_DATASETS else "manifest"


class DataConfig(_Section):
    """What the pipeline (``dvc repro``, ``cplvad datasets prepare``) trains and evaluates on."""

    dataset: str = DEMO_DATASET
    """``demo`` (the built-in synthetic demo videos, extracted by the pipeline), a built-in benchmark
    (``ucf-crime``, ``xd-violence``: their published features, no extraction), or the path of a dataset
    manifest (``dataset.yaml``)."""
    train_videos: str | None = None
    """With a manifest: the training videos to extract (a folder, a list file, or ``s3://``); its lists
    are then the extraction's."""
    test_videos: str | None = None
    """With a manifest: the test videos to extract (given together with ``train_videos``)."""
    features_root: str | None = None
    """Built-in benchmark: the folder of its published feature release (XD-Violence: the folder holding
    ``XDTrainClipFeatures/`` and ``XDTestClipFeatures/``). Manifest: rebases its lists."""
    train_features_root: str | None = None
    """Instead of ``features_root``, for the training features alone (XD's separate folders)."""
    test_features_root: str | None = None
    """Instead of ``features_root``, for the test features alone."""
    train_list: str | None = None
    """Built-in benchmark: the published training list (e.g. ``ucf_CLIP_rgb.csv``), rebased onto the
    training folder; default: the training folder is scanned."""

    @field_validator("dataset")
    @classmethod
    def _known(cls, v: str) -> str:
        looks_like_path = "/" in v or "\\" in v or v.endswith((".yaml", ".yml"))
        if dataset_kind(v) == "manifest" and not looks_like_path:
            builtin = ", ".join((DEMO_DATASET, *BENCHMARK_DATASETS))
            raise ValueError(f"not a built-in dataset ({builtin}) nor the path of a dataset manifest (.yaml)")
        return v

    @field_validator("features_root", "train_features_root", "test_features_root", "train_list")
    @classmethod
    def _local(cls, v: str | None) -> str | None:
        if v is not None and "://" in v:
            raise ValueError(
                "features and their lists are read in place, from a folder; a URL is not supported "
                "(copy the release onto a disk; on Kubeflow, a volume mounted in every pod)"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        kind = dataset_kind(self.dataset)
        given = [
            k
            for k in (
                "train_videos",
                "test_videos",
                "features_root",
                "train_features_root",
                "test_features_root",
                "train_list",
            )
            if getattr(self, k) is not None
        ]
        allowed = {
            "demo": (),
            "benchmark": ("features_root", "train_features_root", "test_features_root", "train_list"),
            "manifest": (
                "train_videos",
                "test_videos",
                "features_root",
                "train_features_root",
                "test_features_root",
            ),
        }[kind]
        wrong = [k for k in given if k not in allowed]
        if wrong:
            what = {
                "demo": "the built-in demo videos, generated and extracted by the pipeline",
                "benchmark": "a built-in benchmark: its published features, nothing to extract",
                "manifest": "a dataset manifest, which names its own lists",
            }[kind]
            raise ValueError(
                f"data.{wrong[0]} does not apply to data.dataset={self.dataset!r} ({what}); "
                f"unset data.{wrong[0]} or choose another data.dataset"
            )
        videos = [k for k in ("train_videos", "test_videos") if k in given]
        if len(videos) == 1:
            other = "test_videos" if videos[0] == "train_videos" else "train_videos"
            raise ValueError(
                f"data.{videos[0]} is set but data.{other} is not; videos are extracted for both splits"
            )
        roots = [k for k in given if k.endswith("features_root")]
        if videos and roots:
            raise ValueError(
                f"data.{roots[0]} contradicts data.train_videos: extracted features are written by "
                "the pipeline; a features root rebases existing lists"
            )
        return self


class ModelConfig(_Section):
    """The dual-branch temporal model (docs/method.md#model)."""

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
    validation_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    """Share of the training videos held out for choices (stratified by class, all crops of a video
    together, chosen from ``seed``; the same videos in both stages): their video-level AUC is reported
    each epoch (history.json ``val_video_auc``) and for the final model (meta.json
    ``extra.validation``). 0 = train on every video, no validation."""
    checkpoint_every: int = Field(1, ge=1)
    """Epochs between resumable checkpoints..."""
    checkpoint_seconds: float = Field(60.0, ge=0.0)
    """...and at least this many seconds after the last one (or the start; 0 = no minimum). A checkpoint
    of the paper-sized model is 342 MB (weights + Adam state), ~0.4 s to write: a GPU epoch of ~2 s should
    not pay it every time. An interruption loses at most this long plus one epoch."""


AUTHOR_THRESHOLDS = [0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
"""The nine thresholds of the authors' pseudo-label rule (their public release, configs/ucf.py and xd.py)."""


class OfficialCarConfig(_Section):
    """The authors' pseudo-label rule (``car.rule: official``), read from their public test-only release
    (``Generate_gt`` in models/model.py), applied to our RBF-aggregated score. Defaults: their UCF-Crime
    numbers; XD-Violence: ``max_gap: 21``, ``min_length: 7``, ``vote_sum: 33``, both flat ratios 0.95.

    Their rule, per level 0-4 separately: threshold the level at each of nine thresholds, merge the runs,
    keep the long ones, add each kept segment's mean score to the snippets it covers, and label a snippet
    positive when the sum over levels and thresholds reaches the vote sum. We aggregate the chosen levels
    first (the paper's Eq. 1, absent from their release) and run the same rule on the one aggregated
    score. Where the levels agree, their sum over |levels| levels is |levels| times the sum on our score,
    so our cut is ``vote_sum / len(levels)`` (22 / 5 = 4.4 on UCF-Crime: a constant score needs 0.8;
    33 / 5 = 6.6 on XD-Violence: 0.9); where they disagree, the RBF has already down-weighted the outlier
    level instead of letting it vote. Their bugs are not copied: the last snippet of each segment counts,
    and both branches use these settings (theirs reuses the first branch's for the second)."""

    levels: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    """Pyramid levels aggregated (0 = finest); the authors use levels 0-4 of 6, not the coarsest."""
    thresholds: list[float] = Field(default_factory=lambda: list(AUTHOR_THRESHOLDS), min_length=1)
    max_gap: int = Field(5, ge=0)
    """Runs above one threshold separated by at most this many snippets below it are merged. The authors'
    ``grouping`` g merges when the next run starts at most g snippets after the last one's final snippet,
    i.e. across g - 1 snippets: UCF-Crime g = 6 -> 5, XD-Violence g = 22 -> 21."""
    min_length: int = Field(6, ge=1)
    """Merged segments shorter than this many snippets (gaps included) are dropped. The authors keep
    ``end - start > filter``: UCF-Crime filter 4 -> 6 snippets, XD-Violence filter 5 -> 7."""
    vote_sum: float = Field(22.0, gt=0.0)
    """The authors' cut on the per-snippet sum over levels and thresholds of kept segments' mean scores
    (UCF-Crime 22, XD-Violence 33); divided by ``len(levels)`` on the aggregated score."""
    flat_ratio: float = Field(0.55, ge=0.0, le=1.0)
    """Flat share of each positive run's pseudo label (the authors' ``flat_ratio1``)."""
    flat_ratio_end: float = Field(0.6, ge=0.0, le=1.0)
    """Flat share of a run that reaches the sample's last valid snippet (their ``flat_ratio2``)."""
    discretisation: Literal["integer", "continuous"] = "integer"
    """``integer``: the authors' flat Gaussian (flat = int(len * ratio) snippets, tails of
    (len - flat) // 2 snippets with sigma = tail / 3, reaching 1 next to the flat part); ``continuous``:
    the simple rule's shape (flat half-width ratio * len / 2 about the centre)."""

    @field_validator("levels")
    @classmethod
    def _distinct_levels(cls, v: list[int]) -> list[int]:
        if any(level < 0 for level in v) or len(set(v)) != len(v):
            raise ValueError("levels must be distinct level indices >= 0 (0 = the finest level)")
        return v

    @field_validator("thresholds")
    @classmethod
    def _in_unit_interval(cls, v: list[float]) -> list[float]:
        return _unit_thresholds(v)


def _unit_thresholds(v: list[float]) -> list[float]:
    if any(not 0.0 < t < 1.0 for t in v):
        raise ValueError("every threshold must lie in (0, 1)")
    return v


class CarConfig(_Section):
    """Consistency-Aware Refinement of pseudo labels (docs/method.md#consistency-aware-refinement-car)."""

    enabled: bool = True
    """``false`` = ablation: plain mean over levels, thresholded, no merging, filtering or tails (either rule)."""
    rule: Literal["simple", "official"] = "simple"
    """After the RBF scale aggregation: ``simple`` = the keys below (one threshold or a majority vote,
    gap filling, minimum length, flat Gaussian); ``official`` = the authors' rule, ``car.official``."""
    sigma_min: float = Field(0.05, gt=0.0)
    thresholds: list[float] = Field(default_factory=lambda: [0.5], min_length=1)
    """One threshold θ, or several whose majority vote decides (simple rule, and CAR off)."""
    max_gap: int = Field(2, ge=0)
    min_length: int = Field(3, ge=1)
    flat_ratio: float = Field(0.6, ge=0.0, le=1.0)
    keep_topk: bool = True
    """An abnormal video left with no run keeps its top-k snippets so its label is respected (either
    rule; the authors' release has no such fallback)."""
    official: OfficialCarConfig = Field(default_factory=OfficialCarConfig)

    @field_validator("thresholds")
    @classmethod
    def _in_unit_interval(cls, v: list[float]) -> list[float]:
        return _unit_thresholds(v)


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
    report_author_protocol: bool = False
    """Also report, under ``author_protocol.*`` keys, the frame AUC/AP the authors' test scripts would
    print: their filters run over the scores of all test videos concatenated (the published keys are
    unchanged). A labelled extra for comparing with the paper's table like for like."""
    author_script: Literal["ucf", "xd"] = "ucf"
    """Which of their scripts to mirror: ``ucf`` (test_ucf.py: binary score through a sigmoid, median
    filter 5, Gaussian sigma 3; category score Gaussian sigma 3) or ``xd`` (test_xd.py: both scores median
    filter 5, Gaussian sigma 3)."""


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
    promote_metric: Literal["auto", "video_auc", "video_ap"] = "auto"
    """The validation metric ``cplvad promote`` decides on (video level, on the held-out training videos of
    ``train.validation_fraction``; the test set never decides). ``auto``: the dataset's headline metric,
    ``video_ap`` for XD-Violence (its literature reports AP), ``video_auc`` for UCF-Crime, the demo and
    any other dataset."""
    promote_floor: float = Field(60.0, ge=0.0, le=100.0)
    """Percent: a model whose validation metric is below this is never promoted, not even when there is
    no champion yet (a broken or one-epoch model must not become the first champion). 50 is chance
    level for a video AUC."""
    promote_min_delta: float = Field(0.5, ge=0.0)
    """Points (metrics are percent) by which a candidate must beat the champion to be promoted, so that
    seed-to-seed noise does not replace a champion."""
    alias_experiments: bool = False
    """Whether a DVC experiment (``dvc exp run``) moves the ``candidate`` alias to the version it
    registers. By default experiments register their model without any alias, so that a sweep never
    changes what ``candidate`` and ``champion`` name; ``cplvad promote --version N`` promotes one of
    them when asked. (``--seeds`` and ``ablate`` register no model at all.)"""


class Config(_Section):
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
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
        """``section.key -> value``, e.g. for MLflow params: credentials in values (a tracking URI's
        password) are masked."""
        return {k: redact(v) if isinstance(v, str) else v for k, v in _flatten(self.to_dict())}


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
        if (
            field is None
            or not isinstance(field.annotation, type)
            or not issubclass(field.annotation, BaseModel)
        ):
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
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
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


def config_from_params(
    params: Mapping[str, Any], overrides: Iterable[str] = (), source: str = "params"
) -> Config:
    """A params mapping (e.g. a pipeline parameter) plus ``section.key=value`` overrides, validated; the
    mapping itself is left unchanged."""
    overrides = list(overrides)
    data = apply_overrides(copy.deepcopy(dict(params)), overrides)
    return config_from_dict(data, source + (" with " + " ".join(overrides) if overrides else ""))


def select_keys(params: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The part of a params mapping named by ``keys``: whole sections (``train``), single keys
    (``predict.false_alarm_rate``) or top-level values (``seed``); absent ones are left out (defaults)."""
    out: dict[str, Any] = {}
    for key in keys:
        section, _, name = key.partition(".")
        if section not in params:
            continue
        if not name:
            out[section] = copy.deepcopy(params[section])
        elif isinstance(params[section], Mapping) and name in params[section]:
            out.setdefault(section, {})[name] = copy.deepcopy(params[section][name])
    return out


def config_from_dict(data: Mapping[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
