"""The built-in benchmarks' test ground truth read a second way, apart from the package, for
tests/test_builtin_datasets.py: it imports nothing from cplvad, so a mistake in the package's loader cannot
hide behind itself. The test compares the package's arrays with what this builds from the committed
metadata (``src/cplvad/data/benchmark_metadata/<name>.json``), this with the committed digests, and, where
the published files are at hand (``$CPLVAD_BENCHMARKS``, default ``../shared/benchmarks``), what this
builds from them with both.

The protocol (as published with the benchmarks): the test videos in the order of the published test list;
a video's ground truth covers F frames, its feature file's snippets times 16; a frame is anomalous when the
video is abnormal (its label is not ``Normal``, UCF-Crime's normal class, nor ``A``, XD-Violence's normal
code) and the frame lies in one of its annotated ``[start, end)`` pairs (``-1`` pairs skipped, pairs cut at
F; a name in an annotation file may end in ``.mp4``). Segment ground truth (the mAP protocol): an abnormal
video's class-labelled segments in file order, a normal video one segment ``0 F A``.

Digests (sha256, ``tests/data/benchmark_digests.json``) of these byte layouts:

- ``frame_gt_sha256``: for each test video in order, one byte per frame, ``0x01`` anomalous, ``0x00`` not;
  nothing between videos (``frames`` = the total length).
- ``segment_gt_sha256``: UTF-8 text, one line per test video in order: its segments as ``start end label``
  joined by ``;``, each line ending in ``\\n``.

Rewrite the digests from the published files (only when they change):

    python tests/reference_gt.py [BENCHMARKS_DIR]
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DIGESTS = Path(__file__).with_name("data") / "benchmark_digests.json"
METADATA = REPO / "src" / "cplvad" / "data" / "benchmark_metadata"
NORMAL_LABELS = {"Normal", "A"}
PUBLISHED = {
    "ucf-crime": {
        "test": "ucf_CLIP_rgbtest.csv",
        "annotations": "Temporal_Anomaly_Annotation.txt",
        "gt": ("gt_segment_ucf.npy", "gt_label_ucf.npy"),
    },
    "xd-violence": {
        "test": "xd_CLIP_rgbtest.csv",
        "annotations": "annotations.txt",
        "gt": ("gt_segment.npy", "gt_label.npy"),
    },
}
"""The published files of each benchmark that the ground truth is built from (see SOURCES.md there)."""

Segment = tuple[int, int, str]


@dataclass(frozen=True)
class GroundTruth:
    videos: list[tuple[str, str, int]]
    """(name, label, frames) of each test video, in evaluation order."""
    frames: np.ndarray
    """uint8 0/1 per frame of every test video, concatenated."""
    segments: list[list[Segment]]

    def digests(self) -> dict:
        text = "".join(
            ";".join(f"{s} {e} {label}" for s, e, label in video) + "\n" for video in self.segments
        )
        return {
            "frame_gt_sha256": hashlib.sha256(self.frames.astype(np.uint8).tobytes()).hexdigest(),
            "segment_gt_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "frames": len(self.frames),
            "videos": len(self.videos),
        }


def build(
    videos: list[tuple[str, str, int]],
    pairs: dict[str, list[tuple[int, int]]],
    labelled: dict[str, list[Segment]],
) -> GroundTruth:
    stray = set(pairs) - {name for name, _, _ in videos}
    assert not stray, f"annotated videos that are not test videos: {sorted(stray)[:3]}"
    parts, segments = [], []
    for name, label, frames in videos:
        gt = np.zeros(frames, np.uint8)
        if label in NORMAL_LABELS:
            segments.append([(0, frames, "A")])
        else:
            for start, end in pairs.get(name, []):
                if start >= 0 and end >= 0:
                    gt[start:end] = 1
            segments.append(labelled[name])
        parts.append(gt)
    return GroundTruth(videos, np.concatenate(parts), segments)


def from_metadata(name: str) -> GroundTruth:
    """From the package's committed metadata file, read as plain JSON."""
    meta = json.loads((METADATA / f"{name}.json").read_text(encoding="utf-8"))
    rows = [dict(zip(meta["test_columns"], row, strict=True)) for row in meta["test"]]
    videos = [(r["video"], r["label"], r["frames"]) for r in rows]
    pairs = {v: list(zip(a[::2], a[1::2], strict=True)) for v, a in meta["annotations"].items()}
    labelled = {v: [(s, e, label) for label, s, e in segs] for v, segs in meta["segments"].items()}
    return build(videos, pairs, labelled)


def from_published(folder: Path) -> GroundTruth:
    """From the published files alone: test list, frame counts, annotations, segment GT arrays."""
    files = PUBLISHED[folder.name]
    with (folder / "test_video_frames.csv").open(newline="") as fh:
        frames = {r["video"]: int(r["frames"]) for r in csv.DictReader(fh)}
    with (folder / files["test"]).open(newline="") as fh:
        listed = [(PurePosixPath(r["path"]).stem.rsplit("__", 1)[0], r["label"]) for r in csv.DictReader(fh)]
    videos = [(v, label, frames[v]) for v, label in listed]
    pairs = {}
    for line in (folder / files["annotations"]).read_text().splitlines():
        video, *fields = line.split()  # UCF-Crime: name class s1 e1 s2 e2; XD-Violence: name s1 e1 ...
        numbers = [int(x) for x in fields if x.lstrip("-").isdigit()]
        pairs[video.removesuffix(".mp4")] = list(zip(numbers[::2], numbers[1::2], strict=True))  # 14 XD names
    # object arrays: trusted published files (never user input), hence allow_pickle
    spans, labels = (np.load(folder / f, allow_pickle=True) for f in files["gt"])
    segments = [
        [(int(s), int(e), str(label)) for (s, e), label in zip(video, names, strict=True)]
        for video, names in zip(spans, labels, strict=True)
    ]
    gt = build(videos, pairs, {v: segs for (v, _, _), segs in zip(videos, segments, strict=True)})
    # the published segment GT of normal videos is given too: it must be what the protocol says
    assert gt.segments == segments, f"{folder}: the published segment GT does not follow the protocol"
    return gt


def main() -> None:
    root = Path(
        sys.argv[1]
        if len(sys.argv) > 1
        else os.environ.get("CPLVAD_BENCHMARKS", REPO.parent / "shared" / "benchmarks")
    )
    digests = {name: from_published(root / name).digests() for name in PUBLISHED}
    DIGESTS.write_text(json.dumps(digests, indent=2) + "\n")
    print(f"digests of the published ground truth -> {DIGESTS}")


if __name__ == "__main__":
    main()
