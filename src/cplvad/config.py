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
from cplvad.redact import strip_credentials_in

DEFAULT_PARAMS_FILE = "params.yaml"
DEMO_DATASET = "demo"


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
    """What a ``data.dataset`` value names: the demo, a registered built-in benchmark, or a manifest file."""
    if dataset == DEMO_DATASET:
        return "demo"
    from cplvad.data.benchmark_specs import BENCHMARKS  # the built-in benchmarks register on import

    return "benchmark" if dataset in BENCHMARKS else "manifest"


class DataConfig(_Section):
    """What the pipeline (``dvc repro``, ``cplvad datasets prepare``) trains and evaluates on."""

    dataset: str = DEMO_DATASET
    """``demo`` (the built-in synthetic demo videos, extracted by the pipeline), a registered built-in
    benchmark (``cplvad.data.benchmark_specs.BENCHMARKS``; built in: ``ucf-crime``, ``xd-violence``: their
    published features, no extraction), or the path of a dataset manifest (``dataset.yaml``)."""
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
    feedback: str | None = None
    """A feedback folder written by ``cplvad feedback add`` (operators' verdicts as video-level samples):
    its samples are added to the training set of both stages, and the evaluation reports false alarms per
    hour on the clips marked false alarm and the recall of confirmed events. Any data; null = none."""
    feedback_repeat: int = Field(8, ge=1)
    """Copies of each feedback sample in the training set (as crops 0..k-1 of its video): verdicts are few
    beside a dataset, and one copy each barely moves the model (on the demo, README "The operators' loop",
    a false alarm stayed above the threshold with 1 and with 4 copies and fell well below it with 8)."""

    @field_validator("dataset")
    @classmethod
    def _known(cls, v: str) -> str:
        looks_like_path = "/" in v or "\\" in v or v.endswith((".yaml", ".yml"))
        if dataset_kind(v) == "manifest" and not looks_like_path:
            from cplvad.data.benchmark_specs import BENCHMARKS

            builtin = ", ".join((DEMO_DATASET, *BENCHMARKS))
            raise ValueError(f"not a built-in dataset ({builtin}) nor the path of a dataset manifest (.yaml)")
        return v

    @field_validator("features_root", "train_features_root", "test_features_root", "train_list", "feedback")
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
    lr_schedule: str = "none"
    """A registered learning-rate schedule (``cplvad.train.schedules.LR_SCHEDULES``), stepped after every
    optimisation step and resumed with the checkpoint. ``none``: ``lr`` throughout (the keys below are
    ignored); ``multistep``: ``lr`` times ``lr_gamma`` after each epoch of ``lr_milestones``, optionally
    after a linear warm-up (the authors' release: x0.1 after epochs 4 and 8 on UCF-Crime, 3, 6 and 10 on
    XD-Violence)."""
    lr_milestones: list[int] = Field(default_factory=list)
    """Epochs after which the learning rate is multiplied by ``lr_gamma`` (increasing; one beyond
    ``epochs`` never applies, like the release's 10 with 8 XD-Violence epochs)."""
    lr_gamma: float = Field(0.1, gt=0.0, le=1.0)
    lr_warmup_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    """Share of all steps (epochs x steps per epoch) spent warming up linearly from ``lr_warmup_factor``
    x ``lr`` to ``lr`` (the release's utils/lr_warmup.py: ``pct_start``, default 0.3); 0 = no warm-up. It
    must end before the first milestone (the release's scheduler would silently skip such a milestone)."""
    lr_warmup_factor: float = Field(0.5, gt=0.0, le=1.0)
    """Learning-rate factor at the first step of the warm-up (the release's ``warmup_factor``: 1/2)."""

    @field_validator("lr_schedule")
    @classmethod
    def _registered_schedule(cls, v: str) -> str:
        from cplvad.train.schedules import LR_SCHEDULES  # the built-in schedules register on import

        return LR_SCHEDULES.check(v)

    @model_validator(mode="after")
    def _milestones(self) -> TrainConfig:
        m = self.lr_milestones
        if any(e < 1 for e in m) or any(b <= a for a, b in zip(m, m[1:], strict=False)):
            raise ValueError(f"train.lr_milestones = {m}: epochs >= 1, strictly increasing")
        if self.lr_schedule == "multistep" and m and self.lr_warmup_fraction * self.epochs >= m[0]:
            raise ValueError(
                f"train.lr_warmup_fraction = {self.lr_warmup_fraction} of {self.epochs} epochs does not end "
                f"before the first milestone (epoch {m[0]}); shorten the warm-up or move the milestone"
            )
        return self


AUTHOR_THRESHOLDS = [0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
"""The nine thresholds of the authors' pseudo-label rule (their public release, configs/ucf.py and xd.py)."""

RENAMED_RULE = (
    "car.rule 'official' was renamed; choose 'paper' (what 'official' computed: the paper's RBF aggregation, "
    "then the release's grouping, filter and flat Gaussian) or 'release' (the authors' Generate_gt exactly, "
    "per level); their numbers moved from car.official to car.release"
)
RENAMED_KEYS = {
    "car.official": "renamed car.release (the authors' numbers, used by car.rule paper and release); "
    "car.rule 'official' is now 'paper' or 'release'",
}
"""Keys that moved: an old params file naming them gets this instead of a bare "unknown key"."""


class ReleaseCarConfig(_Section):
    """The authors' pseudo-label numbers, read from their public test-only release (``Generate_gt`` in
    models/model.py, configs/ucf.py / xd.py) and used by ``car.rule: release`` (their rule as their code runs
    it) and ``car.rule: paper`` (the same grouping, filter and flat Gaussian on the paper's RBF-aggregated
    score). Defaults: their UCF-Crime numbers; XD-Violence: ``max_gap: 21``, ``min_length: 7``,
    ``vote_sum: 33``, both flat ratios 0.95 (configs/release-xd.yaml, configs/paper-xd.yaml).

    Their rule, per level separately (step-upsampled): threshold the level at each of nine thresholds,
    merge the runs, keep the long ones, add each kept segment's confidence to the snippets it covers, and
    label a snippet positive when the sum over levels and thresholds reaches ``vote_sum``. The paper rule
    aggregates the levels first and runs the same steps on the one aggregated score, cut at
    ``vote_sum / len(levels)`` (where the levels agree their sum is len(levels) times ours: 22 / 5 = 4.4
    on UCF-Crime, a constant score needs 0.8; 33 / 5 = 6.6 on XD-Violence, 0.9). Both branches use these
    settings (the release reuses the first branch's variables for the second; its two sets are equal)."""

    levels: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    """Pyramid levels voted on (0 = finest); the authors use levels 0-4 of 6, not the coarsest."""
    thresholds: list[float] = Field(default_factory=lambda: list(AUTHOR_THRESHOLDS), min_length=1)
    max_gap: int = Field(5, ge=0)
    """Runs above one threshold separated by at most this many snippets below it are merged. The authors'
    ``grouping`` g merges when the next run starts at most g snippets after the last one's final snippet,
    i.e. across g - 1 snippets: UCF-Crime g = 6 -> 5, XD-Violence g = 22 -> 21."""
    min_length: int = Field(6, ge=1)
    """Merged segments shorter than this many snippets (gaps included) are dropped. The authors keep
    ``end - start > filter``: UCF-Crime filter 4 -> 6 snippets, XD-Violence filter 5 -> 7."""
    vote_sum: float = Field(22.0, gt=0.0)
    """The authors' cut on the per-snippet sum over levels and thresholds of kept segments' confidences
    (UCF-Crime 22, XD-Violence 33); divided by ``len(levels)`` on the paper rule's aggregated score."""
    flat_ratio: float = Field(0.55, ge=0.0, le=1.0)
    """Flat share of each positive run's pseudo label (the authors' ``flat_ratio1``)."""
    flat_ratio_end: float = Field(0.6, ge=0.0, le=1.0)
    """Flat share of a run that reaches the sample's last valid snippet (their ``flat_ratio2``; with
    ``keep_slips`` the release rule never labels that snippet, so it never applies there)."""
    discretisation: Literal["integer", "continuous"] = "integer"
    """Paper rule only. ``integer``: the authors' flat Gaussian (flat = int(len * ratio) snippets, tails of
    (len - flat) // 2 snippets with sigma = tail / 3, reaching 1 next to the flat part); ``continuous``:
    the simple rule's shape (flat half-width ratio * len / 2 about the centre). The release rule is
    always ``integer``."""
    keep_slips: bool = True
    """Release rule only. ``true``: as their code runs: a segment adds its confidence to ``[start, end)``,
    so the last snippet of every segment gets nothing from it (and the end-of-video ratio never applies);
    ``false``: ``[start, end]``, the one fix."""

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
    """``false`` = ablation: plain mean over levels, thresholded, no merging, filtering or tails (any rule)."""
    rule: str = "simple"
    """A registered CAR rule (``cplvad.pseudo.rules.CAR_RULES``). Built in: ``simple`` = the RBF
    aggregation, then the keys below (one threshold or a majority vote, gap filling, minimum length, flat
    Gaussian); ``paper`` = the RBF aggregation, then the release's grouping, filter and flat Gaussian with
    ``car.release``; ``release`` = the authors' ``Generate_gt`` as their code runs it, with ``car.release``."""
    sigma_min: float = Field(0.05, gt=0.0)
    thresholds: list[float] = Field(default_factory=lambda: [0.5], min_length=1)
    """One threshold θ, or several whose majority vote decides (simple rule, and CAR off)."""
    max_gap: int = Field(2, ge=0)
    min_length: int = Field(3, ge=1)
    flat_ratio: float = Field(0.6, ge=0.0, le=1.0)
    keep_topk: bool = True
    """An abnormal video left with no run keeps its top-k snippets so its label is respected (every rule;
    the authors' release has no such fallback: ``false`` reproduces it)."""
    release: ReleaseCarConfig = Field(default_factory=ReleaseCarConfig)

    @field_validator("thresholds")
    @classmethod
    def _in_unit_interval(cls, v: list[float]) -> list[float]:
        return _unit_thresholds(v)

    @field_validator("rule")
    @classmethod
    def _registered_rule(cls, v: str) -> str:
        if v == "official":
            raise ValueError(RENAMED_RULE)
        from cplvad.pseudo.rules import CAR_RULES  # the built-in rules register on import

        return CAR_RULES.check(v)

    @model_validator(mode="after")
    def _release_is_integer(self) -> CarConfig:
        if self.rule == "release" and self.release.discretisation != "integer":
            raise ValueError(
                "car.release.discretisation: continuous applies to car.rule paper only; the release rule "
                "uses the release's integer flat Gaussian (set it to integer)"
            )
        return self


class Stage2Config(_Section):
    """Cross supervision with the stage-1 pseudo labels."""

    supervision: str = "cross"
    """A registered route (``cplvad.train.supervision.SUPERVISION``): which branch's pseudo labels supervise
    which branch. Built in (paper Table 3): ``cross`` (B <- C, C <- B), ``b_to_c``, ``c_to_b``, ``self``."""
    focal_gamma: float = Field(2.0, ge=0.0)
    focal_alpha: float = Field(0.25, gt=0.0, lt=1.0)
    focal_weight: float = Field(1.0, ge=0.0)

    @field_validator("supervision")
    @classmethod
    def _registered_route(cls, v: str) -> str:
        from cplvad.train.supervision import SUPERVISION  # the built-in routes register on import

        return SUPERVISION.check(v)


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
    level_fusion: Literal["logits", "probabilities"] = "logits"
    """How scoring combines a chunk's levels into the B-branch score: ``logits`` = sigmoid of the mean
    level logit (the paper); ``probabilities`` = mean of the levels' sigmoid probabilities (the authors'
    release, models/model.py ``CPLVAD.forward``). The C branch averages its level logits before the softmax
    either way (both do). Applies to evaluation, validation, calibration and ``cplvad predict`` (a model
    scores with the setting it was trained with; ``cplvad evaluate`` with its own config's)."""
    level_upsampling: Literal["linear", "repeat"] = "linear"
    """How a coarse level reaches snippet resolution at scoring: ``linear`` = position-exact linear
    interpolation (ours); ``repeat`` = each value repeated 2^i times (the release's ``repeat_interleave``)."""


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
    clip_context_s: float = Field(3.0, ge=0.0)
    """Review page: seconds of video before and after each event in its clip; feedback samples of an
    event keep the same context."""
    clip_max_s: float = Field(30.0, gt=0.0)
    """Review page: a longer event's clip shows its first this many seconds (plus the context)."""


class MonitorConfig(_Section):
    """``cplvad monitor``: each source's daily score histogram against the calibration distribution."""

    psi_threshold: float = Field(0.2, gt=0.0)
    """Population stability index above which a source-day counts as drifted. The usual reading: below
    0.1 stable, 0.1-0.2 a moderate shift, above 0.2 a shift that needs attention."""
    min_snippets: int = Field(500, ge=1)
    """Days with fewer scored snippets (500 = 5.3 min at 25 fps) are shown but never flagged: too noisy."""
    days: int = Field(7, ge=1)
    """The most recent days (with scores) shown per source."""


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
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    def to_dict(self, *, keep_credentials: bool = False) -> dict[str, Any]:
        """The config as JSON values, in the form every file, log and upload takes: credentials stripped
        from every value (``cplvad.redact.strip_credentials``: a tracking URI without its user info).
        ``keep_credentials``: as given, only to build another ``Config`` in this process (never written)."""
        data = self.model_dump(mode="json")
        return data if keep_credentials else strip_credentials_in(data)

    def flat(self) -> dict[str, Any]:
        """``section.key -> value``, e.g. for MLflow params (credentials stripped, as ``to_dict``)."""
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
        if e["type"] == "extra_forbidden" and key in RENAMED_KEYS:
            lines.append(f"  {key}: {RENAMED_KEYS[key]}")
        elif e["type"] == "extra_forbidden":
            allowed = ", ".join(_section_fields(e["loc"][:-1]))
            lines.append(f"  {key}: unknown key; allowed keys here: {allowed}")
        elif isinstance(e.get("input"), Mapping):  # a check across a section's keys: the message names them
            lines.append(f"  {key}: {e['msg']}")
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


def upgrade_written_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A config that cplvad itself wrote earlier (a model directory's ``config.json``) in today's keys:
    ``car.official`` -> ``car.release``, ``car.rule: official`` -> ``paper`` (what it computed). Params
    files are not upgraded: an old key there is an error that names the new ones."""
    data = copy.deepcopy(dict(data))
    car = data.get("car")
    if isinstance(car, dict):
        if "official" in car:
            car["release"] = car.pop("official")
        if car.get("rule") == "official":
            car["rule"] = "paper"
    return data


def config_from_dict(data: Mapping[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
