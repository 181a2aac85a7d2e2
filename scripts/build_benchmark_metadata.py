"""Build the package's compact benchmark metadata from the published UCF-Crime / XD-Violence files.

    PYTHONPATH=src python scripts/build_benchmark_metadata.py [--benchmarks DIR]

(default DIR: ``$CPLVAD_BENCHMARKS``, else ``../shared/benchmarks`` beside the repository).

Reads the published lists and annotations (see SOURCES.md in that folder) and writes, in our own format,
``src/cplvad/data/benchmark_metadata/<name>.json``: classes, label codes, the layout of the feature
release, the test videos in evaluation order with their frame counts, the frame-level annotations and the
class-labelled segment annotations (what evaluation needs; the multi-megabyte feature lists are not
carried).

The digests that a clone without the published files checks the package against
(``tests/data/benchmark_digests.json``) are made apart from the package: ``python tests/reference_gt.py``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path, PurePosixPath

from cplvad.data.annotations import read_annotations

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src/cplvad/data/benchmark_metadata"
SOURCE = "VadCLIP release (github.com/nwpu-zxr/VadCLIP, folder list/, commit f643c91)"

# Facts from the benchmarks' documentation (see SOURCES.md): class lists, XD label codes, release layout.
SPECS = {
    "ucf-crime": {
        "title": "UCF-Crime",
        "classes": [
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
        ],
        "label_codes": {},
        "release": "UCFClipFeatures",
        "layout": {
            "train_dir": "",
            "test_dir": "",
            "class_folders": True,
            "normal_folders": ["Training_Normal_Videos_Anomaly", "Testing_Normal_Videos_Anomaly"],
        },
        "files": {
            "train": "ucf_CLIP_rgb.csv",
            "test": "ucf_CLIP_rgbtest.csv",
            "annotations": ("Temporal_Anomaly_Annotation.txt", "ucf"),
            "segments": ("Temporal_Anomaly_Annotation.txt", "ucf"),
        },
    },
    "xd-violence": {
        "title": "XD-Violence",
        "classes": ["Normal", "Fighting", "Shooting", "Riot", "Abuse", "CarAccident", "Explosion"],
        "label_codes": {
            "A": "Normal",
            "B1": "Fighting",
            "B2": "Shooting",
            "B4": "Riot",
            "B5": "Abuse",
            "B6": "CarAccident",
            "G": "Explosion",
        },
        "release": "XDTrainClipFeatures + XDTestClipFeatures",
        "layout": {
            "train_dir": "XDTrainClipFeatures",
            "test_dir": "XDTestClipFeatures",
            "class_folders": False,
            "normal_folders": [],
        },
        "files": {
            "train": "xd_CLIP_rgb.csv",
            "test": "xd_CLIP_rgbtest.csv",
            "annotations": ("annotations.txt", "xd"),
            "segments": ("annotations_multiclasses.txt", "xd-multiclass"),
        },
    },
}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _crop_of(listed: str) -> tuple[str, str, int]:
    """``/home/x/UCFClipFeatures/Abuse/Abuse001_x264__3.npy`` -> ("Abuse", "Abuse001_x264", 3)."""
    p = PurePosixPath(listed)
    name, _, crop = p.stem.rpartition("__")
    return p.parent.name, name, int(crop)


def _test_videos(folder: Path, spec: dict) -> tuple[list[list], int]:
    frames = {r["video"]: r for r in _rows(folder / "test_video_frames.csv")}
    out, crops = [], set()
    for r in _rows(folder / spec["files"]["test"]):
        parent, name, crop = _crop_of(r["path"])
        crops.add(crop)
        info = frames[name]
        sub = parent if spec["layout"]["class_folders"] else ""
        out.append([name, sub, r["label"], int(info["frames"]), info["exact"] == "yes"])
    (test_crop,) = crops
    return out, test_crop


def _train_counts(folder: Path, spec: dict) -> tuple[int, int]:
    crops: dict[str, set[int]] = {}
    for r in _rows(folder / spec["files"]["train"]):
        _, name, crop = _crop_of(r["path"])
        crops.setdefault(name, set()).add(crop)
    (n_crops,) = {len(c) for c in crops.values()}
    return len(crops), n_crops


def build(folder: Path, name: str) -> dict:
    spec = SPECS[name]
    test, test_crop = _test_videos(folder, spec)
    train_videos, crops = _train_counts(folder, spec)
    ann_file, ann_fmt = spec["files"]["annotations"]
    seg_file, seg_fmt = spec["files"]["segments"]
    frame_ann = read_annotations(folder / ann_file, ann_fmt)
    seg_ann = read_annotations(folder / seg_file, seg_fmt)
    return {
        "format": "cplvad-benchmark/1",
        "name": name,
        "title": spec["title"],
        "source": SOURCE,
        "release": spec["release"],
        "classes": spec["classes"],
        "label_codes": spec["label_codes"],
        "frames_per_snippet": 16,
        "crops": crops,
        "test_crop": test_crop,
        "train_videos": train_videos,
        "layout": spec["layout"],
        "test_columns": ["video", "folder", "label", "frames", "exact"],
        "test": test,
        # frame-level GT: [start, end) frame pairs per abnormal test video
        "annotations": {v: [x for s in segs for x in (s.start, s.end)] for v, segs in frame_ann.items()},
        # segment GT (mAP): [label, start, end] per annotated segment
        "segments": {v: [[s.label, s.start, s.end] for s in segs] for v, segs in seg_ann.items()},
    }


def _dump(meta: dict) -> str:
    """JSON with one test video or annotated video per line: compact, and readable in a diff."""

    def one(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    lines = []
    for key, value in meta.items():
        if key == "test":
            body = ",\n".join(f"  {one(v)}" for v in value)
            lines.append(f'"{key}":[\n{body}\n]')
        elif key in ("annotations", "segments"):
            body = ",\n".join(f"  {one(k)}:{one(v)}" for k, v in value.items())
            lines.append(f'"{key}":{{\n{body}\n}}')
        else:
            lines.append(f"{one(key)}:{one(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("CPLVAD_BENCHMARKS") or REPO.parent / "shared" / "benchmarks"
    parser.add_argument("--benchmarks", type=Path, default=Path(default))
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in SPECS:
        meta = build(args.benchmarks / name, name)
        text = _dump(meta)
        (OUT / f"{name}.json").write_text(text, encoding="utf-8")
        print(
            f"{name}: {len(meta['test'])} test videos, {meta['train_videos']} training videos, "
            f"{len(text) / 1e3:.0f} kB -> {OUT / f'{name}.json'}"
        )


if __name__ == "__main__":
    main()
