"""Snippet feature files: memory-mapped reading, uniform resampling for training, chunking for test."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from cplvad.errors import DataError

NPY_MAGIC = b"\x93NUMPY"
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def open_features(path: str | Path, expected_dim: int | None = None) -> np.ndarray:
    """Memory-map a (T, D) float feature file; only its header is read here (and checked: ``feature_header``)."""
    path = Path(path)
    feature_header(path, expected_dim)
    with _unreadable(path):
        return np.load(path, mmap_mode="r", allow_pickle=False)


def feature_header(path: str | Path, expected_dim: int | None = None) -> tuple[int, ...]:
    """The shape (T, D) of a feature file from its ``.npy`` header alone, checked (a float (T, D) array of
    ``expected_dim`` columns), and that the file holds all the data the header announces. No memory map:
    about 5x cheaper per file, which matters for checking the ~16,000 files of a 10-crop release."""
    path = Path(path)
    with _unreadable(path), path.open("rb") as fh:
        if fh.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise DataError(
                f"feature file {path} is not a NumPy file (.npy); a list row must name a .npy feature file "
                "(as `cplvad extract` writes them): fix the list or re-extract this video"
            )
        fh.seek(0)
        read = _HEADER_READERS.get(np.lib.format.read_magic(fh))
        if read is None:  # a newer header version: let numpy read it
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            shape, dtype, available = arr.shape, arr.dtype, arr.nbytes
        else:
            shape, _, dtype = read(fh)
            available = os.fstat(fh.fileno()).st_size - fh.tell()
    _check_array(path, shape, dtype, expected_dim)
    if available < math.prod(shape) * dtype.itemsize:
        raise DataError(
            f"feature file {path} is truncated: its header announces {shape} {dtype} but it holds "
            f"{available} bytes of data; re-extract this video"
        )
    return shape


@contextmanager
def _unreadable(path: Path) -> Iterator[None]:
    """Reading errors as a DataError naming the file. Not with numpy's message for a bad header: it quotes
    the file's bytes, and a list may name any file (say /etc/passwd)."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(
            f"feature file {path} does not exist; check features_root in the dataset manifest"
        ) from None
    except (OSError, EOFError) as exc:
        raise DataError(
            f"feature file {path} is not a readable .npy array ({exc}); re-extract this video"
        ) from None
    except ValueError:
        raise DataError(
            f"feature file {path} is not a readable .npy array (its header is cut short or damaged); "
            "re-extract this video"
        ) from None


def _check_array(path: Path, shape: tuple[int, ...], dtype: np.dtype, expected_dim: int | None) -> None:
    if len(shape) != 2 or shape[0] == 0 or not np.issubdtype(dtype, np.floating):
        raise DataError(
            f"feature file {path} has shape {shape} and dtype {dtype}; expected a non-empty float (T, D) array"
        )
    if expected_dim is not None and shape[1] != expected_dim:
        raise DataError(
            f"feature file {path} has {shape[1]}-d features but {expected_dim} are expected; "
            "features and model must come from the same CLIP model"
        )


def feature_length(path: str | Path) -> int:
    """Number of snippets T of a feature file, from its header alone."""
    return int(feature_header(path)[0])


def load_features(path: str | Path, expected_dim: int | None = None) -> np.ndarray:
    """Read a whole feature file as float32, refusing NaN/inf values."""
    arr = np.asarray(open_features(path, expected_dim), dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise DataError(
            f"feature file {path} holds NaN/inf values (first at snippet {bad}); re-extract this video"
        )
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
