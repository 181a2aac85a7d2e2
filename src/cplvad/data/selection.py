"""The ``data`` section: which data a pipeline runs on, resolved to an ordinary dataset manifest.

``plan_data`` says, before anything runs, what the section asks for (the demo, a built-in benchmark or a
manifest) and which videos, if any, must be extracted first; ``resolve_dataset`` writes the manifest of
data that needs no extraction. Extraction itself is ``cplvad.workflow.data.prepare_data``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from cplvad.config import DEMO_DATASET, DataConfig, dataset_kind
from cplvad.data.benchmarks import load_benchmark, release_folders, write_benchmark_dataset
from cplvad.errors import ConfigError, DataError
from cplvad.io import write_text
from cplvad.storage.atomic import atomic_dir
from cplvad.storage.location import is_url

MANIFEST_FILE = "dataset.yaml"
_PATH_KEYS = ("train_list", "test_list", "annotations", "segment_annotations")
_ROOT_KEYS = ("features_root", "train_features_root", "test_features_root")


@dataclass(frozen=True)
class DataPlan:
    """What the ``data`` section asks for."""

    kind: Literal["demo", "benchmark", "manifest"]
    dataset: str
    manifest: Path | None
    """The manifest that names classes and annotations (the demo's, or the user's); None for a benchmark."""
    videos: dict[str, str] = field(default_factory=dict)
    """Split -> video source to extract first (``train``, ``test``); empty when nothing is extracted."""

    @property
    def needs_extraction(self) -> bool:
        return bool(self.videos)


def plan_data(data: DataConfig, demo_dir: str | Path | None = None) -> DataPlan:
    """What ``data`` asks for; ConfigError/DataError for missing files, before anything runs.

    ``demo_dir``: the folder ``cplvad demo-videos`` wrote (needed for ``data.dataset: demo``).
    """
    kind = dataset_kind(data.dataset)
    if kind == "benchmark":  # a pipeline trains: the features must be there
        release_folders(
            load_benchmark(data.dataset),
            data.features_root,
            data.train_features_root,
            data.test_features_root,
        )
        return DataPlan(kind, data.dataset, None)
    if kind == "demo":
        if demo_dir is None:
            raise ConfigError(
                "data.dataset=demo: the demo videos come from `cplvad demo-videos --out DIR`; "
                "pass that folder (--demo-videos DIR)"
            )
        demo = Path(demo_dir)
        videos = {split: str(demo / f"{split}_videos.csv") for split in ("train", "test")}
        plan = DataPlan(kind, DEMO_DATASET, demo / MANIFEST_FILE, videos)
    else:
        videos = {"train": data.train_videos, "test": data.test_videos} if data.train_videos else {}
        plan = DataPlan(kind, data.dataset, Path(data.dataset), videos)  # type: ignore[arg-type]
    if not plan.manifest.is_file():  # type: ignore[union-attr]
        raise DataError(f"data.dataset: the dataset manifest {plan.manifest} does not exist")
    for split, src in plan.videos.items():
        if not is_url(src) and not Path(src).exists():
            raise DataError(
                f"data.{split}_videos: {src} does not exist; give a folder or list of videos, or s3://"
            )
    return plan


def resolve_dataset(data: DataConfig, out_dir: str | Path) -> Path:
    """Write the dataset manifest of ``data`` (which must need no extraction) into ``out_dir``.

    A built-in benchmark: its manifest, lists and annotations (see ``write_benchmark_dataset``; without
    a features folder, for evaluation from predictions only). A manifest: a copy with absolute paths and
    the features roots of ``data`` applied.
    """
    kind = dataset_kind(data.dataset)
    if kind == "benchmark":
        bench = load_benchmark(data.dataset)
        given = any(getattr(data, k) is not None for k in _ROOT_KEYS)
        folders = (
            release_folders(bench, data.features_root, data.train_features_root, data.test_features_root)
            if given
            else None
        )
        if data.train_list is not None and folders is None:
            raise ConfigError(
                "data.train_list is rebased onto the training features: set data.features_root too"
            )
        return write_benchmark_dataset(bench, out_dir, folders, data.train_list)
    plan = plan_data(data)
    if plan.needs_extraction:
        raise ConfigError(
            f"data.train_videos: {data.dataset} needs its videos extracted first "
            "(`cplvad datasets prepare` or `dvc repro`)"
        )
    raw = read_manifest(plan.manifest)  # type: ignore[arg-type]
    roots = {k: str(Path(getattr(data, k)).resolve()) for k in _ROOT_KEYS if getattr(data, k) is not None}
    with atomic_dir(out_dir) as tmp:
        write_manifest(
            tmp / MANIFEST_FILE,
            {**absolute_paths(raw, plan.manifest.parent), **roots},  # type: ignore[union-attr]
            f"from {plan.manifest}",
        )
    return Path(out_dir) / MANIFEST_FILE


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(f"dataset manifest {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise DataError(f"dataset manifest {path} must be a mapping of keys (name, classes, train_list, ...)")
    return raw


def absolute_paths(raw: dict[str, Any], root: Path) -> dict[str, Any]:
    """The manifest's relative paths (lists, annotations, feature roots) made absolute from ``root``."""
    out = dict(raw)
    for key in (*_PATH_KEYS, *_ROOT_KEYS):
        if out.get(key) is not None:
            out[key] = str((root / str(out[key])).resolve())
    return out


def write_manifest(path: Path, manifest: dict[str, Any], origin: str) -> None:
    write_text(
        path, f"# written by cplvad {origin}; do not edit\n" + yaml.safe_dump(manifest, sort_keys=False)
    )
