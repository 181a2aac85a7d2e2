"""The predictions file (``P.npz``): per-snippet anomaly and class probabilities of every test video.

Keys: ``names`` (N video names as in the test list, crop suffix removed), ``lengths`` (N snippet
counts), ``binary`` (sum(lengths) anomaly probabilities), ``classes`` (sum(lengths) x M class
probabilities, columns in manifest class order). Loaded without pickle; validated against a dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cplvad.data.dataset import Dataset
from cplvad.errors import DataError
from cplvad.io import NAME_ERRORS, load_npz, save_npz

ROW_SUM_TOLERANCE = 1e-3
REQUIRED_KEYS = ("names", "lengths", "binary", "classes")


@dataclass
class Predictions:
    names: list[str]
    lengths: np.ndarray
    binary: np.ndarray
    classes: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)])

    def videos(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(name, binary (T,), classes (T, M)) per video."""
        off = self.offsets
        for i, name in enumerate(self.names):
            yield name, self.binary[off[i] : off[i + 1]], self.classes[off[i] : off[i + 1]]

    def save(self, path: str | Path) -> None:
        save_npz(
            path,
            names=np.asarray(self.names, dtype=str),
            lengths=np.asarray(self.lengths, dtype=np.int64),
            binary=np.asarray(self.binary, dtype=np.float32),
            classes=np.asarray(self.classes, dtype=np.float32),
        )

    @classmethod
    def from_videos(cls, items: list[tuple[str, np.ndarray, np.ndarray]]) -> Predictions:
        """Build from (name, binary (T,), classes (T, M)) per video."""
        return cls(
            names=[n for n, _, _ in items],
            lengths=np.array([len(b) for _, b, _ in items], dtype=np.int64),
            binary=np.concatenate([b for _, b, _ in items]).astype(np.float32),
            classes=np.concatenate([c for _, _, c in items]).astype(np.float32),
        )

    @classmethod
    def load(cls, path: str | Path) -> Predictions:
        path = Path(path)
        data = load_npz(
            path,
            REQUIRED_KEYS,
            "predictions",
            "write it with `cplvad evaluate --predictions-out` "
            "(names as a string array, see the README's predictions format)",
        )
        names, lengths, binary, classes = (data[k] for k in REQUIRED_KEYS)
        if names.dtype.kind not in "US":
            raise DataError(f"predictions {path}: 'names' must be a string array, got dtype {names.dtype}")
        for key, array in (("binary", binary), ("classes", classes)):
            if array.dtype.kind not in "biuf":
                raise DataError(
                    f"predictions {path}: {key!r} must hold real numbers, got dtype {array.dtype}"
                )
        if names.ndim != 1 or lengths.shape != names.shape:
            raise DataError(
                f"predictions {path}: 'names' and 'lengths' must be 1-D arrays of the same length"
            )
        if not np.issubdtype(lengths.dtype, np.integer) or (lengths < 1).any():
            raise DataError(f"predictions {path}: 'lengths' must be positive integers (snippets per video)")
        total = int(lengths.sum())
        if binary.shape != (total,):
            raise DataError(
                f"predictions {path}: 'binary' has shape {binary.shape}, expected ({total},) = sum(lengths)"
            )
        if classes.ndim != 2 or classes.shape[0] != total:
            raise DataError(f"predictions {path}: 'classes' has shape {classes.shape}, expected ({total}, M)")
        texts = [n.decode("utf-8", NAME_ERRORS) if isinstance(n, bytes) else str(n) for n in names.tolist()]
        return cls(texts, lengths.astype(np.int64), binary.astype(np.float32), classes.astype(np.float32))


def validate(pred: Predictions, dataset: Dataset, source: str = "predictions") -> Predictions:
    """Check predictions against the dataset's test list; return them in test-list order.

    Errors name the file, the video and the fix: missing, extra or duplicate videos, wrong lengths
    (against the feature files where they are available), NaN/inf, values outside [0, 1], class rows
    that do not sum to 1, a class count that differs from the manifest.
    """
    m = len(dataset.classes)
    if pred.classes.shape[1] != m:
        raise DataError(
            f"{source}: 'classes' has {pred.classes.shape[1]} columns but {dataset.name} has {m} classes "
            f"{list(dataset.classes.names)}; columns must follow the manifest class order"
        )
    seen: set[str] = set()
    dupes = sorted({n for n in pred.names if n in seen or seen.add(n)})
    if dupes:
        raise DataError(f"{source}: videos predicted more than once: {dupes[:5]}; keep one entry per video")
    expected = dataset.test.names
    missing = [n for n in expected if n not in seen]
    extra = [n for n in pred.names if n not in dataset.test.index]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} test video(s) missing, e.g. {missing[:3]}")
        if extra:
            parts.append(
                f"{len(extra)} video(s) not in the test list, e.g. {extra[:3]} (names carry no crop suffix)"
            )
        raise DataError(f"{source}: {'; '.join(parts)}; predict exactly the videos of {dataset.test.path}")

    per_video = {name: (b, c) for name, b, c in pred.videos()}
    for name, (b, c) in per_video.items():
        bad_b, bad_c = ~np.isfinite(b), ~np.isfinite(c).all(axis=1)
        if bad_b.any() or bad_c.any():
            snip = int(np.argmax(bad_b | bad_c))
            raise DataError(
                f"{source}: video {name!r} has NaN/inf scores (first at snippet {snip}); fix the model output"
            )
        if (b < 0).any() or (b > 1).any():
            raise DataError(f"{source}: video {name!r}: 'binary' values must be probabilities in [0, 1]")
        sums = c.sum(axis=1)
        off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
        if (c < 0).any() or off.any():
            snip = int(np.argmax(off | (c < 0).any(axis=1)))
            raise DataError(
                f"{source}: video {name!r}, snippet {snip}: class probabilities sum to {sums[snip]:.4f}; "
                "each row must be a softmax distribution (non-negative, summing to 1)"
            )
    _check_lengths_against_features(pred, dataset, source)
    order = [per_video[n] for n in expected]
    return Predictions(
        names=list(expected),
        lengths=np.array([len(b) for b, _ in order], dtype=np.int64),
        binary=np.concatenate([b for b, _ in order]),
        classes=np.concatenate([c for _, c in order]),
    )


def _check_lengths_against_features(pred: Predictions, dataset: Dataset, source: str) -> None:
    """Compare lengths with the test feature files when every one of them is available locally."""
    try:
        true_lengths = dataset.test_lengths_from_features()
    except DataError:
        return
    by_name = dict(zip(pred.names, pred.lengths.tolist(), strict=True))
    for video, t in zip(dataset.test, true_lengths.tolist(), strict=True):
        if by_name[video.name] != t:
            raise DataError(
                f"{source}: video {video.name!r} has {by_name[video.name]} predicted snippets but its feature "
                f"file has {t}; predict one score per snippet"
            )
