"""Dataset manifests (``dataset.yaml``, docs/architecture.md#dataset-manifest) and VadCLIP-style feature lists.

A manifest points at a training and a test list (CSV ``path,label``). The paths in published lists are
absolute paths of the publisher's machine; ``features_root`` rebases them onto the local copy by their
trailing ``Class/file.npy`` (or the bare file name). Feature files are located lazily, so ground truth
and metrics work without them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cplvad.containment import Escapes, inside
from cplvad.data.annotations import AnnotationFormat, Segment, read_annotations
from cplvad.data.features import feature_length
from cplvad.data.ground_truth import GTSegment, frame_labels, segment_ground_truth
from cplvad.data.labels import ClassList
from cplvad.errors import DataError
from cplvad.io import NAME_ERRORS

_CROP = re.compile(r"(?P<name>.+)__(?P<crop>[0-9]{1,9})", re.DOTALL)  # fullmatch: names may hold newlines


class DatasetManifest(BaseModel):
    """The contents of ``dataset.yaml``; relative paths are relative to the manifest's folder."""

    model_config = ConfigDict(extra="forbid")

    name: str
    classes: list[str] = Field(min_length=2)
    train_list: Path
    test_list: Path
    annotations: Path | None = None
    """Test annotations for the frame-level ground truth (AUC/AP)."""
    annotations_format: AnnotationFormat = "auto"
    segment_annotations: Path | None = None
    """Class-labelled annotations for the mAP segment ground truth; default: ``annotations``.

    XD-Violence publishes two files that differ slightly: the frame GT comes from ``annotations.txt``
    and the segment GT from ``annotations_multiclasses.txt``; use both to reproduce its protocol.
    """
    segment_annotations_format: AnnotationFormat = "auto"
    features_root: Path | None = None
    train_features_root: Path | None = None
    """Rebases the training list only (default: ``features_root``): XD-Violence publishes its training and
    test features in two folders."""
    test_features_root: Path | None = None
    """Rebases the test list only (default: ``features_root``)."""
    frames_per_snippet: int = Field(16, ge=1)
    label_codes: dict[str, str] = Field(default_factory=dict)


def split_crop(stem: str) -> tuple[str, int | None]:
    """``"Abuse001_x264__3"`` -> ("Abuse001_x264", 3); no crop suffix -> (stem, None)."""
    m = _CROP.fullmatch(stem)
    return (m["name"], int(m["crop"])) if m else (stem, None)


def _pure(path: str) -> PurePosixPath | PureWindowsPath:
    return PureWindowsPath(path) if "\\" in path else PurePosixPath(path)


@dataclass(frozen=True)
class FeatureRow:
    """One row of a feature list: one crop of one video."""

    listed_path: str
    label: str
    crop: int | None
    line: int


@dataclass(frozen=True)
class Video:
    name: str
    label: str
    classes: tuple[str, ...]
    abnormal: bool
    rows: tuple[FeatureRow, ...]


class FeatureList:
    """A parsed VadCLIP-format list: videos in list order, crops grouped under their video."""

    def __init__(self, path: Path, videos: list[Video], features_root: Path | None, split: str) -> None:
        self.path = path
        self.videos = videos
        self.features_root = features_root
        self.split = split
        self.index = {v.name: i for i, v in enumerate(videos)}

    def __len__(self) -> int:
        return len(self.videos)

    def __iter__(self):
        return iter(self.videos)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.videos]

    def locate(self, row: FeatureRow) -> Path:
        """The local file of a list row; DataError (with the paths tried) when it is not there."""
        candidates = row_candidates(row.listed_path, self.path.parent, self.features_root)
        for cand in candidates:
            if cand.is_file():
                return cand
        tried = ", ".join(str(c) for c in candidates)
        raise DataError(
            f"{self.path}:{row.line}: feature file {row.listed_path!r} not found (tried {tried}); "
            "set features_root in the dataset manifest to the folder that holds the features"
        )

    def crop_paths(self, video: Video) -> list[Path]:
        return [self.locate(row) for row in video.rows]

    def samples(self) -> list[tuple[int, FeatureRow, Path]]:
        """Every (video index, list row, crop file) of this list, located on disk: one training sample each."""
        return [(i, row, self.locate(row)) for i, v in enumerate(self.videos) for row in v.rows]


def row_candidates(listed_path: str, list_dir: Path, features_root: Path | None) -> list[Path]:
    """Where the file of a list row may be. With ``features_root``, rows are rebased onto it by their
    trailing ``Class/file.npy`` (then their bare file name), and ``Escapes`` when that would leave it
    (``/x/../F.npy``). Without, a row is used as written, relative to the list's folder (which confines
    nothing: the row could as well be absolute)."""
    listed = _pure(listed_path)
    if features_root is None:
        inside([listed.name], "the path")
        return [Path(listed) if listed.is_absolute() else list_dir.joinpath(*listed.parts)]
    name = inside([listed.name], "the path's file name")
    tails = [name]
    if listed.parent.name:
        tails.insert(0, inside([listed.parent.name, listed.name], "the path's trailing Class/file.npy"))
    return [features_root.joinpath(*tail) for tail in tails]


def feature_list_csv(rows: Iterable[tuple[str, str]]) -> str:
    """A list in the VadCLIP format every list here is read in (``path,label`` under a header): feature lists
    (extraction, the demo, the built-in benchmarks, feedback) and the demo's video lists."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label"])
    writer.writerows(rows)
    return buf.getvalue()


def read_feature_list(path: Path, classes: ClassList, features_root: Path | None, split: str) -> FeatureList:
    if not path.is_file():
        raise DataError(f"{split} list {path} does not exist; fix '{split}_list' in the dataset manifest")
    rows_by_video: dict[str, list[FeatureRow]] = {}
    labels: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8", errors=NAME_ERRORS) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["path", "label"]:
            raise DataError(f"{path}: expected a CSV with header 'path,label' (VadCLIP format), got {header}")
        for lineno, rec in enumerate(reader, start=2):
            if not rec or not "".join(rec).strip():
                continue
            if len(rec) < 2:
                raise DataError(f"{path}:{lineno}: expected 'path,label', got {rec}")
            listed, label = rec[0].strip(), rec[1].strip()
            try:
                row_candidates(listed, path.parent, features_root)
            except Escapes as exc:
                raise DataError(
                    f"{path}:{lineno}: row {listed!r} is refused: {exc}"
                    + (f", outside features_root {features_root}" if features_root else "")
                ) from None
            name, crop = split_crop(_pure(listed).stem)
            if name in labels and labels[name] != label:
                raise DataError(
                    f"{path}:{lineno}: video {name!r} is labelled {label!r} here but {labels[name]!r} before"
                )
            labels[name] = label
            rows_by_video.setdefault(name, []).append(FeatureRow(listed, label, crop, lineno))
    if not rows_by_video:
        raise DataError(f"{split} list {path} holds no videos")
    videos = []
    for name, rows in rows_by_video.items():
        try:
            parsed = classes.parse(labels[name])
        except DataError as exc:
            raise DataError(
                f"{path}:{rows[0].line}: video {name!r}: {exc}; add the class to the manifest"
            ) from None
        crops = [r.crop for r in rows]
        if len(set(crops)) != len(crops):
            raise DataError(f"{path}:{rows[-1].line}: video {name!r} lists the same crop twice")
        videos.append(Video(name, labels[name], parsed, parsed != (classes.normal,), tuple(rows)))
    return FeatureList(path, videos, features_root, split)


class Dataset:
    """A loaded manifest: class list, training and test lists, and (lazily) the test annotations."""

    def __init__(self, manifest: DatasetManifest, root: Path, source: Path | None = None) -> None:
        self.manifest = manifest
        self.root = root
        self.source = source
        self.classes = ClassList(tuple(manifest.classes), dict(manifest.label_codes))

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def frames_per_snippet(self) -> int:
        return self.manifest.frames_per_snippet

    def _resolve(self, p: Path) -> Path:
        return p if p.is_absolute() else self.root / p

    def features_root(self, split: str) -> Path | None:
        """The folder that rebases ``split``'s list: ``<split>_features_root``, else ``features_root``."""
        root = getattr(self.manifest, f"{split}_features_root") or self.manifest.features_root
        return self._resolve(root) if root else None

    @cached_property
    def train(self) -> FeatureList:
        path = self._resolve(self.manifest.train_list)
        return read_feature_list(path, self.classes, self.features_root("train"), "train")

    @cached_property
    def test(self) -> FeatureList:
        lst = read_feature_list(
            self._resolve(self.manifest.test_list), self.classes, self.features_root("test"), "test"
        )
        for v in lst:
            if len(v.rows) > 1:
                raise DataError(
                    f"{lst.path}: test video {v.name!r} has {len(v.rows)} crops; the test list uses one crop"
                )
        return lst

    def _checked_annotations(self, path: Path, fmt: AnnotationFormat) -> dict[str, list[Segment]]:
        """Read annotations and check them against the test list (unknown or missing videos are errors)."""
        ann = read_annotations(path, fmt)
        test_names = set(self.test.names)
        unknown = [n for n in ann if n not in test_names]
        if unknown:
            raise DataError(
                f"{path}: annotations name {len(unknown)} video(s) that are not in the test list {self.test.path}, "
                f"e.g. {unknown[:3]}; remove those lines or use the matching test list"
            )
        missing = [v.name for v in self.test if v.abnormal and v.name not in ann]
        if missing:
            raise DataError(
                f"{path}: {len(missing)} abnormal test video(s) have no annotation line, e.g. {missing[:3]}; "
                "annotate them (or label them normal in the test list)"
            )
        return ann

    @cached_property
    def annotations(self) -> dict[str, list[Segment]]:
        """Test annotations of the frame-level ground truth."""
        if self.manifest.annotations is None:
            raise DataError(
                f"{self.source or 'dataset manifest'}: no 'annotations' file; it is needed for evaluation"
            )
        return self._checked_annotations(
            self._resolve(self.manifest.annotations), self.manifest.annotations_format
        )

    @cached_property
    def segment_annotations(self) -> dict[str, list[Segment]]:
        """Test annotations of the segment ground truth (mAP): ``segment_annotations`` or ``annotations``."""
        if self.manifest.segment_annotations is None:
            return self.annotations
        path = self._resolve(self.manifest.segment_annotations)
        return self._checked_annotations(path, self.manifest.segment_annotations_format)

    def test_lengths_from_features(self) -> np.ndarray:
        """Snippet count T of every test video, read from the feature file headers."""
        return np.array([feature_length(self.test.locate(v.rows[0])) for v in self.test], dtype=np.int64)

    def frame_ground_truth(self, lengths: Sequence[int]) -> np.ndarray:
        """All test frames' 0/1 labels, concatenated in test-list order (T*16 per video)."""
        ann = self.annotations
        fps = self.frames_per_snippet
        parts = [
            frame_labels(ann.get(v.name, []) if v.abnormal else [], int(t), fps)
            for v, t in zip(self.test, lengths, strict=True)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def segment_ground_truth(self, lengths: Sequence[int]) -> list[list[GTSegment]]:
        """Per test video, the (start, end, label) segments of the mAP protocol."""
        ann = self.segment_annotations
        out = []
        for v, t in zip(self.test, lengths, strict=True):
            video_label = v.classes[0] if len(v.classes) == 1 else v.label
            out.append(
                segment_ground_truth(
                    ann.get(v.name, []), int(t), v.abnormal, video_label, self.frames_per_snippet
                )
            )
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "classes": list(self.classes.names),
            "train_videos": len(self.train),
            "train_samples": sum(len(v.rows) for v in self.train),
            "test_videos": len(self.test),
        }


def load_dataset(path: str | Path) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset manifest {path} does not exist; create it (see README, 'Dataset manifest')")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"dataset manifest {path} is not valid YAML: {exc}") from None
    try:
        manifest = DatasetManifest.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise DataError(f"dataset manifest {path}: {problems}") from None
    dataset = Dataset(manifest, path.resolve().parent, path)
    return dataset
