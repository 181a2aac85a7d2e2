"""Built-in benchmarks by registration: one spec record per benchmark, ``BENCHMARKS`` by name.

A spec says what a benchmark is and how its published feature release is laid out; what is measured from
the published lists (test videos in evaluation order, frame counts, annotations) is in its metadata file,
generated from those files by ``scripts/build_benchmark_metadata.py``. ``cplvad.data.benchmarks`` joins
the two. ``data.dataset``, ``--dataset``, ``cplvad datasets`` and ``datasets check`` accept every
registered name; UCF-Crime and XD-Violence register here the way another benchmark does
(``register_benchmark(BenchmarkSpec(...))``, in a module imported before the config is loaded).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cplvad.data.annotations import AnnotationFormat
from cplvad.registry import Registry

METADATA_FORMAT = "cplvad-benchmark/1"
VADCLIP_LISTS = "VadCLIP release (github.com/nwpu-zxr/VadCLIP, folder list/, commit f643c91)"


@dataclass(frozen=True)
class PublishedFiles:
    """The published files, in one folder, that the build script turns into the metadata file."""

    source: str
    """Where they were published (kept in the metadata and in the manifests written from it)."""
    train_list: str
    """Training feature list, columns ``path,label``, every crop of every video."""
    test_list: str
    """Test feature list (one crop per video) in evaluation order."""
    annotations: tuple[str, AnnotationFormat]
    """Frame-level annotations of the abnormal test videos and their format."""
    segment_annotations: tuple[str, AnnotationFormat]
    """Class-labelled segment annotations (fine-grained mAP) and their format."""
    frame_counts: str = "test_video_frames.csv"
    """Per test video ``video,label,frames,exact``: ``frames`` = snippets x frames per snippet of its
    feature file; ``exact`` = ``yes`` where it is exact for this release."""


@dataclass(frozen=True, kw_only=True, eq=False)
class BenchmarkSpec:
    """One built-in benchmark. Compared by identity: the metadata loaded for a registration is cached."""

    name: str
    """The ``data.dataset`` / ``--dataset`` value."""
    title: str
    release: str
    """The published feature release as its users know it (named in messages)."""
    classes: tuple[str, ...]
    """Class names, the normal class first."""
    label_codes: Mapping[str, str] = field(default_factory=dict)
    """Label code -> class name, where labels are codes (XD-Violence ``B1-B2-0``)."""
    train_dir: str = ""
    """Folder of the training features under ``data.features_root`` (``""``: that folder itself)."""
    test_dir: str = ""
    """Folder of the test features under ``data.features_root``."""
    label_in_name: str | None = None
    """None: the features lie in one folder per class, which is a training video's label (the test
    videos share the folders). Else the features lie flat, and this regular expression's ``label``
    group finds a video's label in its name."""
    normal_folders: tuple[str, ...] = ()
    """With class folders: the folders of normal videos (their label is the normal class)."""
    frames_per_snippet: int = 16
    """Feature files are ``<video>__<crop>.npy``, one row per snippet of this many frames."""
    headline_metric: str = "frame_auc_binary"
    """The ``metrics.json`` key the literature reports first on this benchmark."""
    published: PublishedFiles
    metadata: Path | None = None
    """The metadata file; None: ``benchmark_metadata/<name>.json`` in this package."""

    def __post_init__(self) -> None:
        if self.label_in_name is not None and "label" not in re.compile(self.label_in_name).groupindex:
            raise ValueError(f"benchmark {self.name}: label_in_name needs a (?P<label>...) group")

    @property
    def class_folders(self) -> bool:
        return self.label_in_name is None

    def metadata_text(self) -> str:
        if self.metadata is not None:
            return self.metadata.read_text(encoding="utf-8")
        return (resources.files("cplvad.data") / "benchmark_metadata" / f"{self.name}.json").read_text(
            "utf-8"
        )

    def facts(self) -> dict[str, Any]:
        """What the metadata file repeats from the spec (the build script writes it, loading checks it)."""
        return {
            "name": self.name,
            "title": self.title,
            "source": self.published.source,
            "release": self.release,
            "classes": list(self.classes),
            "label_codes": dict(self.label_codes),
            "frames_per_snippet": self.frames_per_snippet,
            "layout": {
                "train_dir": self.train_dir,
                "test_dir": self.test_dir,
                "class_folders": self.class_folders,
                "normal_folders": list(self.normal_folders),
            },
        }


BENCHMARKS: Registry[BenchmarkSpec] = Registry("data.dataset", "built-in benchmark")


def register_benchmark(spec: BenchmarkSpec) -> BenchmarkSpec:
    """Make ``spec.name`` a built-in dataset."""
    return BENCHMARKS.register(spec.name)(spec)


register_benchmark(
    BenchmarkSpec(
        name="ucf-crime",
        title="UCF-Crime",
        release="UCFClipFeatures",
        classes=(
            "Normal",
            "Abuse",
            "Arrest",
            "Arson",
            "Assault",
            "Burglary",
            "Explosion",
            "Fighting",
            "RoadAccidents",
            "Robbery",
            "Shooting",
            "Shoplifting",
            "Stealing",
            "Vandalism",
        ),
        normal_folders=("Training_Normal_Videos_Anomaly", "Testing_Normal_Videos_Anomaly"),
        headline_metric="frame_auc_binary",
        published=PublishedFiles(
            source=VADCLIP_LISTS,
            train_list="ucf_CLIP_rgb.csv",
            test_list="ucf_CLIP_rgbtest.csv",
            annotations=("Temporal_Anomaly_Annotation.txt", "ucf"),
            segment_annotations=("Temporal_Anomaly_Annotation.txt", "ucf"),
        ),
    )
)

register_benchmark(
    BenchmarkSpec(
        name="xd-violence",
        title="XD-Violence",
        release="XDTrainClipFeatures + XDTestClipFeatures",
        classes=("Normal", "Fighting", "Shooting", "Riot", "Abuse", "CarAccident", "Explosion"),
        label_codes={
            "A": "Normal",
            "B1": "Fighting",
            "B2": "Shooting",
            "B4": "Riot",
            "B5": "Abuse",
            "B6": "CarAccident",
            "G": "Explosion",
        },
        train_dir="XDTrainClipFeatures",
        test_dir="XDTestClipFeatures",
        label_in_name=r"_label_(?P<label>[^_]+)$",
        headline_metric="frame_ap_binary",
        published=PublishedFiles(
            source=VADCLIP_LISTS,
            train_list="xd_CLIP_rgb.csv",
            test_list="xd_CLIP_rgbtest.csv",
            annotations=("annotations.txt", "xd"),
            segment_annotations=("annotations_multiclasses.txt", "xd-multiclass"),
        ),
    )
)
