"""Built-in benchmarks (``BENCHMARKS``: UCF-Crime, XD-Violence, ...): the package's metadata and the
published feature releases.

A registered spec (``benchmark_specs.py``) gives the release layout; the metadata file gives what
evaluation needs (``benchmark_metadata/<name>.json``, generated from the published files by
``scripts/build_benchmark_metadata.py``): the test videos in evaluation order with their frame counts,
the frame-level and the class-labelled segment annotations. The features stay where the user put the
published release, unchanged:

- class folders (UCF-Crime): ``UCFClipFeatures/<Class>/<video>__<k>.npy``, normal videos in
  ``Training_Normal_Videos_Anomaly/`` and ``Testing_Normal_Videos_Anomaly/``; training and test videos
  share the class folders.
- flat folders (XD-Violence): ``XDTrainClipFeatures/`` and ``XDTestClipFeatures/``; a video's labels
  are in its name (``..._label_B1-B2-0``).

Without a published training list the training videos are found by scanning the training folder: every
``<video>__<k>.npy`` that is not a test video, labelled by its class folder or the label codes in its
name. ``write_benchmark_dataset`` turns all this into an ordinary dataset manifest folder.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from cplvad.data.benchmark_specs import BENCHMARKS, METADATA_FORMAT, BenchmarkSpec
from cplvad.data.dataset import feature_list_csv, split_crop
from cplvad.data.labels import ClassList
from cplvad.errors import ConfigError, DataError
from cplvad.io import write_json, write_text
from cplvad.storage.atomic import atomic_dir


@dataclass(frozen=True)
class TestVideo:
    name: str
    folder: str
    """Sub-folder of the test features folder that holds the video (its class folder, if there are any)."""
    label: str
    frames: int
    """T*16 of the video's published feature file."""
    exact: bool
    """False where the published frame count comes from another feature release (can be 16 frames off)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class Benchmark(BenchmarkSpec):
    """A registered benchmark with the facts of its metadata file."""

    crops: int
    """Crops per video in the published training features."""
    test_crop: int
    """The crop of each test video that the published test list holds."""
    train_videos: int
    """Videos in the published training split (the package does not carry their names)."""
    test: tuple[TestVideo, ...]
    annotations: dict[str, list[int]]
    segments: dict[str, list[list[Any]]]

    @property
    def class_list(self) -> ClassList:
        return ClassList(self.classes, self.label_codes)

    def test_file(self, video: TestVideo) -> str:
        """Path of a test video's feature file relative to the test features folder."""
        name = f"{video.name}__{self.test_crop}.npy"
        return f"{video.folder}/{name}" if video.folder else name


def load_benchmark(name: str) -> Benchmark:
    """The registered benchmark ``name`` (``BENCHMARKS``) with its metadata; ConfigError for an unknown name."""
    return _load(BENCHMARKS[name])


@cache
def _load(spec: BenchmarkSpec) -> Benchmark:
    """The spec with its metadata file, which must have been built from this spec (else ConfigError)."""
    where = spec.metadata or f"cplvad/data/benchmark_metadata/{spec.name}.json"
    rebuild = "build it from the published files with scripts/build_benchmark_metadata.py"
    try:
        raw = json.loads(spec.metadata_text())
    except FileNotFoundError:
        raise ConfigError(
            f"benchmark {spec.name!r}: its metadata file {where} does not exist; {rebuild}"
        ) from None
    stale = [key for key, value in spec.facts().items() if raw.get(key) != value]
    if raw.get("format") != METADATA_FORMAT:
        stale.insert(0, "format")
    if stale:
        raise ConfigError(
            f"{where}: its {', '.join(stale)} disagree with the registered benchmark {spec.name!r}; {rebuild}"
        )
    return Benchmark(
        **{f.name: getattr(spec, f.name) for f in fields(BenchmarkSpec)},
        crops=raw["crops"],
        test_crop=raw["test_crop"],
        train_videos=raw["train_videos"],
        test=tuple(TestVideo(*row) for row in raw["test"]),
        annotations=raw["annotations"],
        segments=raw["segments"],
    )


@dataclass(frozen=True)
class ReleaseFolders:
    """Where the training and the test features of a release are on this machine."""

    train: Path
    test: Path


def release_folders(
    bench: Benchmark, features_root: str | None, train_root: str | None = None, test_root: str | None = None
) -> ReleaseFolders:
    """The training and test feature folders from ``data.features_root`` (or the per-split settings)."""
    if features_root is None and (train_root is None or test_root is None):
        missing = (
            "data.features_root"
            if train_root is None and test_root is None
            else ("data.test_features_root" if train_root else "data.train_features_root")
        )
        raise ConfigError(
            f"{bench.name}: {missing} is not set; give the folder of the published feature release "
            f"({bench.release}), e.g. --set data.features_root=/data/{bench.release.split()[0]}"
        )
    folders = []
    for split, explicit, sub in (("train", train_root, bench.train_dir), ("test", test_root, bench.test_dir)):
        if explicit is not None:
            folder, setting = Path(explicit), f"data.{split}_features_root"
        else:
            folder, setting = Path(features_root) / sub, "data.features_root"  # type: ignore[arg-type]
        if not folder.is_dir():
            raise DataError(f"{bench.name}: {setting} {_hint(bench, folder, split)}")
        folders.append(folder)
    return ReleaseFolders(*folders)


def _hint(bench: Benchmark, folder: Path, split: str) -> str:
    """Why ``folder`` is not the release's ``split`` folder, and what to set instead."""
    parent = folder.parent
    if not bench.train_dir or not parent.is_dir():
        return f"{folder} is not a folder"
    if any(parent.glob("*__0.npy")):
        return (
            f"{parent} holds feature files directly, not the {bench.train_dir}/ and {bench.test_dir}/ folders of "
            f"the release; set data.train_features_root and data.test_features_root to the two folders"
        )
    return (
        f"{parent} has no {folder.name}/ folder; the {bench.title} release comes as {bench.train_dir}/ and "
        f"{bench.test_dir}/ (set data.features_root to their parent, or data.{split}_features_root to the folder)"
    )


def scan_training_features(bench: Benchmark, folder: Path) -> list[tuple[str, str]]:
    """``(path relative to folder, label)`` of every training crop in a release folder, sorted.

    Test videos are left out (class folders hold both splits). A file name without a crop suffix, a
    folder that is no class, a flat name without label codes: DataError (wrong layout).
    """
    test_names = {v.name for v in bench.test}
    classes = bench.class_list
    rows = []
    for rel, label in _feature_files(bench, folder):
        name, crop = split_crop(Path(rel).stem)
        if crop is None:
            raise DataError(f"{folder / rel}: a feature file of {bench.title} is named <video>__<crop>.npy")
        if name in test_names:
            continue
        if bench.label_in_name is not None:
            m = re.search(bench.label_in_name, name)
            if m is None:
                raise DataError(
                    f"{folder / rel}: {bench.title} names carry their labels (matching {bench.label_in_name})"
                )
            label = m["label"]
        try:
            classes.parse(label)
        except DataError as exc:
            raise DataError(f"{folder / rel}: {exc}") from None
        rows.append((rel, label))
    if not rows:
        raise DataError(
            f"{folder}: no training features of {bench.title} ({bench.release}) found in this folder"
        )
    return sorted(rows)


def _feature_files(bench: Benchmark, folder: Path) -> list[tuple[str, str]]:
    """``(relative path, folder label)`` of the .npy files of a release folder, checking the layout."""
    if not bench.class_folders:
        return [(e.name, "") for e in os.scandir(folder) if e.is_file() and e.name.endswith(".npy")]
    out = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.name.endswith(".npy"):
            raise DataError(
                f"{entry.path}: {bench.title} features live in class folders ({folder}/<Class>/*.npy)"
            )
        if not entry.is_dir():
            continue
        label = bench.classes[0] if entry.name in bench.normal_folders else entry.name
        if label not in bench.classes:
            inner = Path(entry.path) / bench.classes[1]
            hint = f"; did you mean data.features_root={entry.path}?" if inner.is_dir() else ""
            allowed = ", ".join([*bench.classes[1:], *bench.normal_folders])
            raise DataError(
                f"{entry.path}: {entry.name!r} is not a {bench.title} class folder (expected {allowed}){hint}"
            )
        out += [
            (f"{entry.name}/{e.name}", label)
            for e in os.scandir(entry.path)
            if e.is_file() and e.name.endswith(".npy")
        ]
    return out


def write_benchmark_dataset(
    bench: Benchmark, out_dir: str | Path, folders: ReleaseFolders | None, train_list: str | None = None
) -> Path:
    """Write a dataset manifest folder for a built-in benchmark (atomically); return its ``dataset.yaml``.

    ``dataset.yaml``, ``test.csv`` (the test videos in evaluation order), ``train.csv`` (scanned from the
    training folder, or ``train_list``: a published list rebased onto it), ``annotations.json`` (frame
    GT) and ``segment_annotations.json`` (segment GT). Without ``folders`` only evaluation from
    predictions works: the training list is empty and test paths are relative to the folder itself.
    """
    out_dir = Path(out_dir)
    manifest: dict[str, Any] = {
        "name": bench.name,
        "classes": list(bench.classes),
        "label_codes": bench.label_codes,
        "train_list": "train.csv",
        "test_list": "test.csv",
        "annotations": "annotations.json",
        "segment_annotations": "segment_annotations.json",
        "frames_per_snippet": bench.frames_per_snippet,
    }
    if folders is not None:
        manifest["train_features_root"] = str(folders.train.resolve())
        manifest["test_features_root"] = str(folders.test.resolve())
    if train_list is not None:
        if not Path(train_list).is_file():
            raise DataError(
                f"data.train_list {train_list!r} does not exist; give the published training list"
            )
        manifest["train_list"] = str(Path(train_list).resolve())
    header = (
        f"# {bench.title}, built in to cplvad ({bench.published.source}); written by cplvad, do not edit.\n"
        + (
            ""
            if folders
            else "# No features folder given: train.csv is empty (evaluation from predictions only).\n"
        )
    )
    with atomic_dir(out_dir) as tmp:
        write_text(tmp / "dataset.yaml", header + yaml.safe_dump(manifest, sort_keys=False))
        write_text(tmp / "test.csv", feature_list_csv([(bench.test_file(v), v.label) for v in bench.test]))
        train_rows = scan_training_features(bench, folders.train) if folders and train_list is None else []
        write_text(tmp / "train.csv", feature_list_csv(train_rows))
        write_json(
            tmp / "annotations.json",
            {
                v: [pairs[i : i + 2] for i in range(0, len(pairs), 2)]
                for v, pairs in bench.annotations.items()
            },
        )
        write_json(
            tmp / "segment_annotations.json",
            {v: [[s, e, label] for label, s, e in segs] for v, segs in bench.segments.items()},
        )
    return out_dir / "dataset.yaml"
