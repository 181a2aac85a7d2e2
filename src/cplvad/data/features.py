"""Snippet feature files: memory-mapped reading, uniform resampling for training, chunking for test."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cplvad.errors import DataError


def open_features(path: str | Path, expected_dim: int | None = None) -> np.ndarray:
    """Memory-map a (T, D) float feature file; only its header is read here."""
    path = Path(path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"feature file {path} does not exist; check features_root in the dataset manifest") from None
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"feature file {path} is not a readable .npy array ({exc}); re-extract this video") from None
    if arr.ndim != 2 or arr.shape[0] == 0 or not np.issubdtype(arr.dtype, np.floating):
        raise DataError(
            f"feature file {path} has shape {arr.shape} and dtype {arr.dtype}; expected a non-empty float (T, D) array"
        )
    if expected_dim is not None and arr.shape[1] != expected_dim:
        raise DataError(
            f"feature file {path} has {arr.shape[1]}-d features but {expected_dim} are expected; "
            "features and model must come from the same CLIP model"
        )
    return arr


def feature_length(path: str | Path) -> int:
    """Number of snippets T of a feature file, from its header alone."""
    return int(open_features(path).shape[0])


def load_features(path: str | Path, expected_dim: int | None = None) -> np.ndarray:
    """Read a whole feature file as float32, refusing NaN/inf values."""
    arr = np.asarray(open_features(path, expected_dim), dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise DataError(f"feature file {path} holds NaN/inf values (first at snippet {bad}); re-extract this video")
    return arr


def uniform_bins(length: int, n: int) -> np.ndarray:
    """Boundaries of n uniform bins over ``length`` snippets (n + 1 integers, each bin non-empty)."""
    return np.linspace(0, length, n + 1).astype(np.int64)


def resample(features: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Training view of a video: (n, D) and the number of valid rows.

    Longer than n: mean-pooled into n uniform bins. Shorter: zero-padded (mask the padding).
    """
    length, dim = features.shape
    if length > n:
        bounds = uniform_bins(length, n)
        sums = np.add.reduceat(features, bounds[:-1], axis=0)
        counts = np.diff(bounds)[:, None]
        return (sums / counts).astype(np.float32), n
    out = np.zeros((n, dim), dtype=np.float32)
    out[:length] = features
    return out, length


def chunk(features: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Test view of a video: (C, n, D) chunks of n snippets (last one zero-padded) and valid lengths (C,)."""
    length, dim = features.shape
    n_chunks = -(-length // n)
    out = np.zeros((n_chunks * n, dim), dtype=np.float32)
    out[:length] = features
    lengths = np.full(n_chunks, n, dtype=np.int64)
    lengths[-1] = length - n * (n_chunks - 1)
    return out.reshape(n_chunks, n, dim), lengths
