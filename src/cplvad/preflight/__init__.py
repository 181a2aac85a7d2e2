"""Preflight: before a command's long work, every input and service it will need is checked, in seconds.

Each ``for_*`` function is what one command needs; it raises our own error (``DataError``, ``ConfigError``,
``ServiceError``) naming the file, setting or service and what to do, and returns a one-line summary of
what it checked. What is checked, and what it costs: ``features`` (feature lists), ``services`` (MLflow,
S3), ``files`` (output folders), ``cplvad.clip_weights`` (weights files); ``benchmarks/bench_preflight.py`` measures it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from cplvad.clip_weights import check_clip_weights
from cplvad.config import Config
from cplvad.data.dataset import Dataset
from cplvad.preflight.features import FeatureCheck, check_feature_lists
from cplvad.preflight.files import check_writable_dir
from cplvad.preflight.services import check_readable, check_tracking, check_writable
from cplvad.storage.location import is_url

REGISTRY_PREFIXES = ("models:/", "runs:/")


def _summary(start: float, parts: list[str]) -> str:
    return f"preflight ({time.perf_counter() - start:.1f} s): " + "; ".join(parts)


def for_training_run(dataset: Dataset, out: str | Path, config: Config, *, track: bool) -> str:
    """``run`` and ``ablate``: both feature lists (test values scanned), the CLIP weights (the text encoder),
    the run folder, and the tracking store when the run is tracked."""
    start = time.perf_counter()
    parts = [check_feature_lists(dataset, ("train", "test")).summary()]
    check_clip_weights(config.clip)
    check_writable_dir(out, "--out")
    parts.append(f"{out} writable")
    if track:
        parts.append(f"MLflow at {check_tracking(config)} writable")
    return _summary(start, parts)


def for_training(dataset: Dataset, out: str | Path, config: Config) -> str:
    """``train``: the training list, the CLIP weights, the model folder."""
    start = time.perf_counter()
    parts = [check_feature_lists(dataset, ("train",)).summary()]
    check_clip_weights(config.clip)
    check_writable_dir(out, "--out")
    return _summary(start, [*parts, f"{out} writable"])


def for_scoring(
    dataset: Dataset, model: str | Path, config: Config, *, split: str, folders: Iterable[str | Path]
) -> str:
    """``evaluate`` (test list, values scanned) and ``pseudo-labels`` (training list): the list's files at the
    model's width, the model's registry when it is a ``models:/`` URI, the output folders."""
    start = time.perf_counter()
    parts = []
    if str(model).startswith(REGISTRY_PREFIXES):
        parts.append(f"MLflow at {check_tracking(config)}")
        width = None
    else:  # imported here: the extraction's preflight (and its DVC stage) does not depend on model code
        from cplvad.modeling.factory import read_model_config

        width = read_model_config(model)[1].feature_dim
    check: FeatureCheck = check_feature_lists(dataset, (split,), expected_dim=width, scan_values=("test",))
    parts.insert(0, check.summary())
    for folder in folders:
        check_writable_dir(folder, "output folder")
    return _summary(start, parts)


def for_prediction(model: str | Path, out: str | Path, config: Config) -> str:
    """``predict``: the model's registry when it is a ``models:/`` URI, the output folder. (The CLIP weights
    are checked when the first video needs them; inputs fail one by one, with their reasons.)"""
    start = time.perf_counter()
    parts = [f"MLflow at {check_tracking(config)}"] if str(model).startswith(REGISTRY_PREFIXES) else []
    _check_output(str(out))
    return _summary(start, [*parts, f"{out} writable"])


def for_extraction(src: str, dst: str, config: Config) -> str:
    """``extract``: the source readable, the destination writable (S3 with short timeouts), the weights."""
    start = time.perf_counter()
    if is_url(src):
        check_readable(src)
    check_clip_weights(config.clip)
    _check_output(dst)
    return _summary(start, [f"{src} readable", f"{dst} writable"])


def _check_output(out: str) -> None:
    """``--out``, a folder or an ``s3://`` (any remote) prefix, takes new files."""
    if is_url(out):
        check_writable(out)
    else:
        check_writable_dir(out, "--out")


def for_tracking(config: Config) -> str:
    """``track`` and ``promote``: the tracking store, reached with short timeouts."""
    start = time.perf_counter()
    return _summary(start, [f"MLflow at {check_tracking(config)} writable"])


__all__ = [
    "for_extraction",
    "for_prediction",
    "for_scoring",
    "for_tracking",
    "for_training",
    "for_training_run",
]
