"""Build the package's compact metadata of the built-in benchmarks from their published files.

    PYTHONPATH=src python scripts/build_benchmark_metadata.py [--benchmarks DIR] [NAME ...]

(default DIR: ``$CPLVAD_BENCHMARKS``, else ``../shared/benchmarks`` beside the repository; default
NAMEs: every registered benchmark whose metadata the package carries).

Reads the published files that a benchmark's spec names (``cplvad.data.benchmark_specs``: lists,
frame counts, annotations) from ``DIR/<name>/`` and writes, in our own format,
``src/cplvad/data/benchmark_metadata/<name>.json``: the spec's classes, label codes and release layout,
the test videos in evaluation order with their frame counts, the frame-level annotations and the
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
from cplvad.data.benchmark_specs import BENCHMARKS, METADATA_FORMAT, BenchmarkSpec

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src/cplvad/data/benchmark_metadata"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _crop_of(listed: str) -> tuple[str, str, int]:
    """``/home/x/UCFClipFeatures/Abuse/Abuse001_x264__3.npy`` -> ("Abuse", "Abuse001_x264", 3)."""
    p = PurePosixPath(listed)
    name, _, crop = p.stem.rpartition("__")
    return p.parent.name, name, int(crop)


def _test_videos(folder: Path, spec: BenchmarkSpec) -> tuple[list[list], int]:
    frames = {r["video"]: r for r in _rows(folder / spec.published.frame_counts)}
    out, crops = [], set()
    for r in _rows(folder / spec.published.test_list):
        parent, name, crop = _crop_of(r["path"])
        crops.add(crop)
        info = frames[name]
        sub = parent if spec.class_folders else ""
        out.append([name, sub, r["label"], int(info["frames"]), info["exact"] == "yes"])
    (test_crop,) = crops
    return out, test_crop


def _train_counts(folder: Path, spec: BenchmarkSpec) -> tuple[int, int]:
    crops: dict[str, set[int]] = {}
    for r in _rows(folder / spec.published.train_list):
        _, name, crop = _crop_of(r["path"])
        crops.setdefault(name, set()).add(crop)
    (n_crops,) = {len(c) for c in crops.values()}
    return len(crops), n_crops


def build(folder: Path, spec: BenchmarkSpec) -> dict:
    """The metadata of ``spec`` from its published files in ``folder``."""
    test, test_crop = _test_videos(folder, spec)
    train_videos, crops = _train_counts(folder, spec)
    frame_ann, seg_ann = (
        read_annotations(folder / file, fmt)
        for file, fmt in (spec.published.annotations, spec.published.segment_annotations)
    )
    return {
        "format": METADATA_FORMAT,
        **spec.facts(),
        "crops": crops,
        "test_crop": test_crop,
        "train_videos": train_videos,
        "test_columns": ["video", "folder", "label", "frames", "exact"],
        "test": test,
        # frame-level GT: [start, end) frame pairs per abnormal test video
        "annotations": {v: [x for s in segs for x in (s.start, s.end)] for v, segs in frame_ann.items()},
        # segment GT (mAP): [label, start, end] per annotated segment
        "segments": {v: [[s.label, s.start, s.end] for s in segs] for v, segs in seg_ann.items()},
    }


def dump(meta: dict) -> str:
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
    parser.add_argument("names", nargs="*", metavar="NAME", help="registered benchmarks (default: all)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.names or [n for n in BENCHMARKS if BENCHMARKS[n].metadata is None]:
        meta = build(args.benchmarks / name, BENCHMARKS[name])
        text = dump(meta)
        (OUT / f"{name}.json").write_text(text, encoding="utf-8")
        print(
            f"{name}: {len(meta['test'])} test videos, {meta['train_videos']} training videos, "
            f"{len(text) / 1e3:.0f} kB -> {OUT / f'{name}.json'}"
        )


if __name__ == "__main__":
    main()
