"""Built-in benchmarks (UCF-Crime, XD-Violence): the package's metadata and the published feature releases.

The package carries what evaluation needs (``benchmark_metadata/<name>.json``, generated from the
published files by ``scripts/build_benchmark_metadata.py``): classes, XD label codes, the test videos in
evaluation order with their frame counts, the frame-level and the class-labelled segment annotations.
The features stay where the user put the published release, unchanged:

- UCF-Crime: ``UCFClipFeatures/<Class>/<video>__<k>.npy``, normal videos in
  ``Training_Normal_Videos_Anomaly/`` and ``Testing_Normal_Videos_Anomaly/``; training and test videos
  share the class folders.
- XD-Violence: two flat folders, ``XDTrainClipFeatures/`` and ``XDTestClipFeatures/``; a video's labels
  are in its name (``..._label_B1-B2-0``).

Without a published training list the training videos are found by scanning the training folder: every
``<video>__<k>.npy`` that is not a test video, labelled by its class folder (UCF) or the label codes in
its name (XD). ``write_benchmark_dataset`` turns all this into an ordinary dataset manifest folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cplvad.config import BENCHMARK_DATASETS
from cplvad.data.dataset import split_crop
from cplvad.data.labels import ClassList
from cplvad.errors import ConfigError, DataError
from cplvad.io import atomic_dir, write_json, write_text

_XD_LABEL = re.compile(r"_label_(?P<label>[^_]+)$")


@dataclass(frozen=True)
class TestVideo:
    name: str
    folder: str
    """Sub-folder of the test features folder that holds the video (UCF: its class folder; XD: none)."""
    label: str
    frames: int
    """T*16 of the video's published feature file."""
    exact: bool
    """False where the published frame count comes from another feature release (can be 16 frames off)."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    source: str
    release: str
    classes: tuple[str, ...]
    label_codes: dict[str, str]
    frames_per_snippet: int
    crops: int
    test_crop: int
    train_videos: int
    """Videos in the published training split (the package does not carry their names)."""
    train_dir: str
    test_dir: str
    class_folders: bool
    normal_folders: tuple[str, ...]
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


def is_benchmark(name: str) -> bool:
    return name in BENCHMARK_DATASETS


@cache
def load_benchmark(name: str) -> Benchmark:
    """The package's metadata of a built-in benchmark; ConfigError for an unknown name."""
    if not is_benchmark(name):
        raise ConfigError(
            f"{name!r} is not a built-in benchmark; the built-in ones are {', '.join(BENCHMARK_DATASETS)}"
        )
    raw = json.loads(
        (resources.files("cplvad.data") / "benchmark_metadata" / f"{name}.json").read_text("utf-8")
    )
    layout = raw["layout"]
    return Benchmark(
        name=raw["name"],
        title=raw["title"],
        source=raw["source"],
        release=raw["release"],
        classes=tuple(raw["classes"]),
        label_codes=dict(raw["label_codes"]),
        frames_per_snippet=raw["frames_per_snippet"],
        crops=raw["crops"],
        test_crop=raw["test_crop"],
        train_videos=raw["train_videos"],
        train_dir=layout["train_dir"],
        test_dir=layout["test_dir"],
        class_folders=layout["class_folders"],
        normal_folders=tuple(layout["normal_folders"]),
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

    Test videos are left out (UCF keeps them in the same class folders). A file name without a crop
    suffix, a UCF folder that is no class, an XD name without label codes: DataError (wrong layout).
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
        if not bench.class_folders:
            m = _XD_LABEL.search(name)
            if m is None:
                raise DataError(
                    f"{folder / rel}: {bench.title} names carry their labels ('..._label_B1-0-0__0.npy')"
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


def _csv(rows: list[tuple[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label"])
    writer.writerows(rows)
    return buf.getvalue()


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
    header = f"# {bench.title}, built in to cplvad ({bench.source}); written by cplvad, do not edit.\n" + (
        ""
        if folders
        else "# No features folder given: train.csv is empty (evaluation from predictions only).\n"
    )
    with atomic_dir(out_dir) as tmp:
        write_text(tmp / "dataset.yaml", header + yaml.safe_dump(manifest, sort_keys=False))
        write_text(tmp / "test.csv", _csv([(bench.test_file(v), v.label) for v in bench.test]))
        train_rows = scan_training_features(bench, folders.train) if folders and train_list is None else []
        write_text(tmp / "train.csv", _csv(train_rows))
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
