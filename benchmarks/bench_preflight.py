"""Cost of the feature-file preflight on a synthetic release of UCF-Crime's size (not a test; prints figures).

    .venv/bin/python benchmarks/bench_preflight.py                  # 1,610 x 10 train crops + 290 test videos
    python benchmarks/bench_preflight.py --train-videos 200         # smaller

Writes a dataset like the published 10-crop CLIP features into a temporary folder: ``--train-videos`` x
``--crops`` training files and ``--test-videos`` test files (one crop), (T, 512) float32 with T drawn around
``--mean-snippets`` (UCF-Crime: ~4 minutes of 30 fps video per video, ~450 snippets). Test files are written in
full; training files are written sparse (the header, then a hole up to the full size), so the release takes
the disk space of the test files only and the training headers cost what real ones do. Timed:

- the preflight of ``cplvad run``: every header of both lists (memory-mapped) + NaN/inf scan of the test list;
- headers only (both lists);
- a NaN/inf scan of the training list too (on sparse files: memory speed, an upper bound of the throughput;
  real files also pay the disk, which ``load_training_set`` pays anyway when training starts).

Each is run twice: the first pass after writing (files partly in the page cache), the second warm.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cplvad.data.benchmarks import load_benchmark
from cplvad.data.dataset import load_dataset
from cplvad.extract.manifest import npy_size
from cplvad.preflight.features import check_feature_lists

CLASSES = list(load_benchmark("ucf-crime").classes)


def _lengths(n: int, mean: int, rng: np.random.Generator) -> np.ndarray:
    return np.clip(rng.lognormal(np.log(mean) - 0.5, 1.0, n), 4, 20 * mean).astype(int)


def _sparse_npy(path: Path, rows: int, dim: int) -> None:
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, dim), np.float32))
    header["shape"] = (rows, dim)
    with path.open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.truncate(npy_size(rows, dim))


def write_release(root: Path, args: argparse.Namespace) -> tuple[Path, int, int]:
    """The dataset manifest, and the bytes of the training and test features."""
    rng = np.random.default_rng(0)
    rows = ["path,label"]
    train_bytes = 0
    for i, t in enumerate(_lengths(args.train_videos, args.mean_snippets, rng)):
        label = CLASSES[i % len(CLASSES)]
        (root / "features" / label).mkdir(parents=True, exist_ok=True)
        for k in range(args.crops):
            _sparse_npy(root / "features" / label / f"v{i}_x264__{k}.npy", int(t), args.dim)
            rows.append(f"/publisher/UCFClipFeatures/{label}/v{i}_x264__{k}.npy,{label}")
            train_bytes += int(t) * args.dim * 4
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    rows = ["path,label"]
    test_bytes = 0
    (root / "features" / "Testing").mkdir(parents=True, exist_ok=True)
    for i, t in enumerate(_lengths(args.test_videos, args.mean_snippets, rng)):
        np.save(
            root / "features" / "Testing" / f"t{i}_x264__0.npy",
            rng.standard_normal((t, args.dim), np.float32),
        )
        rows.append(f"/publisher/UCFClipFeatures/Testing/t{i}_x264__0.npy,{CLASSES[i % len(CLASSES)]}")
        test_bytes += int(t) * args.dim * 4
    (root / "test.csv").write_text("\n".join(rows) + "\n")
    manifest = root / "dataset.yaml"
    manifest.write_text(
        f"name: synthetic-ucf\nclasses: {CLASSES}\ntrain_list: train.csv\ntest_list: test.csv\n"
        "features_root: features\n"
    )
    return manifest, train_bytes, test_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-videos", type=int, default=1610)
    ap.add_argument("--crops", type=int, default=10)
    ap.add_argument("--test-videos", type=int, default=290)
    ap.add_argument("--mean-snippets", type=int, default=450)
    ap.add_argument("--dim", type=int, default=512)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cplvad-bench-preflight-") as tmp:
        t0 = time.perf_counter()
        manifest, train_bytes, test_bytes = write_release(Path(tmp), args)
        dataset = load_dataset(manifest)
        n_train, n_test = args.train_videos * args.crops, args.test_videos
        print(
            f"release: {n_train:,} training files ({train_bytes / 1e9:.1f} GB if dense, written sparse) and "
            f"{n_test:,} test files ({test_bytes / 1e9:.2f} GB), {args.dim}-d; written in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        cases = (
            ("headers only, both lists", ()),
            ("preflight of `run`: headers of both lists + NaN/inf scan of the test list", ("test",)),
            ("headers + NaN/inf scan of both lists (training files sparse)", ("train", "test")),
        )
        files = n_train + n_test
        headers = 0.0
        for label, scan in cases:
            times = []
            for _ in range(2):
                start = time.perf_counter()
                check = check_feature_lists(dataset, ("train", "test"), scan_values=scan)
                times.append(time.perf_counter() - start)
            headers = headers or times[1]
            scanned = (
                f"; {check.scanned_bytes / 1e9:.2f} GB scanned at "
                f"{check.scanned_bytes / 1e9 / max(times[1] - headers, 1e-9):.2f} GB/s"
                if scan
                else ""
            )
            print(
                f"{label}: {times[0]:.2f} s, then {times[1]:.2f} s warm ({times[1] / files * 1e6:.0f} us per file"
                f"{scanned})"
            )


if __name__ == "__main__":
    main()
