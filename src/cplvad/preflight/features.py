"""The feature files of a dataset's lists, checked before any training or scoring starts.

Every row of each list: the file is located (inside the root it is rebased onto: ``features_root`` or the
list's folder), and its ``.npy`` header is read memory-mapped (``np.load(mmap_mode="r")``, no pickle): a
non-empty float ``(T, D)`` array whose data the file holds in full (a truncated file fails here). All files
of all lists share one width D (the model's, when one is given). Reading headers costs the same whatever
the feature sizes (``benchmarks/bench_preflight.py``: the 16,390 files of a UCF-Crime-sized 10-crop release
in 1.6 s on a 2-core machine). Headers of unscanned files are read without a memory map (``feature_header``).

Values (NaN/inf) need a full read, so only the lists in ``scan_values`` are scanned here: by default the
test list (one crop per video, what evaluation reads at the end of a run; 2 % of UCF-Crime's 10-crop
feature bytes, 0.2 s). The training list is read in full anyway when training loads it, before the first
epoch, and that load refuses NaN/inf values with the file's name; scanning it here too would read it twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cplvad.data.dataset import Dataset, FeatureList
from cplvad.data.features import feature_header, open_features
from cplvad.errors import DataError

SCAN_ROWS = 8192
"""Rows of a memory-mapped file checked for NaN/inf at a time (bounds the memory of the scan)."""


@dataclass
class FeatureCheck:
    """What was checked: files per list, their common width, and the bytes scanned for NaN/inf."""

    files: dict[str, int]
    width: int
    scanned_bytes: int

    def summary(self) -> str:
        lists = ", ".join(f"{n} {split}" for split, n in self.files.items())
        scanned = f", {self.scanned_bytes / 1e6:,.1f} MB scanned for NaN/inf" if self.scanned_bytes else ""
        return f"feature files: {lists}, all {self.width}-d{scanned}"


def check_feature_lists(
    dataset: Dataset,
    splits: Iterable[str] = ("train", "test"),
    *,
    expected_dim: int | None = None,
    scan_values: Iterable[str] = ("test",),
) -> FeatureCheck:
    """Check every feature file of the ``splits`` lists; DataError naming the first bad file and its row."""
    scan = set(scan_values)
    check = FeatureCheck(files={}, width=expected_dim or 0, scanned_bytes=0)
    first: str | None = None
    for split in splits:
        features: FeatureList = getattr(dataset, split)
        for row in (row for video in features for row in video.rows):
            path = features.locate(row)
            where = f"{features.path}:{row.line}"
            try:
                arr = open_features(path) if split in scan else None
                width = arr.shape[1] if arr is not None else feature_header(path)[1]
            except DataError as exc:
                raise DataError(f"{where}: {exc}") from None
            if check.width and width != check.width:
                against = f"the model's {expected_dim}" if expected_dim else f"{check.width} in {first}"
                raise DataError(
                    f"{where}: feature file {path} has {width}-d features, but {against}; every feature "
                    "file (and the model) must come from the same CLIP model: re-extract it"
                )
            check.width, first = width, first or str(path)
            if arr is not None:
                check.scanned_bytes += _check_values(arr, path, where)
            check.files[split] = check.files.get(split, 0) + 1
    return check


def _check_values(arr: np.ndarray, path: Path, where: str) -> int:
    for start in range(0, len(arr), SCAN_ROWS):
        block = np.asarray(arr[start : start + SCAN_ROWS])
        bad = ~np.isfinite(block)
        if bad.any():
            snippet = start + int(np.argwhere(bad)[0, 0])
            raise DataError(
                f"{where}: feature file {path} holds NaN/inf values (first at snippet {snippet}); "
                "re-extract this video"
            )
    return arr.nbytes
