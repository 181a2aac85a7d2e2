"""File formats of cplvad's outputs and inputs: text, JSON, ``.npy`` / ``.npz`` and PyTorch files, and the
encoding of the file names they quote.

Every writer here goes through ``cplvad.storage.atomic.atomic_path``: the file appears whole or not at all,
and inside an output folder that cplvad claimed it is recorded as cplvad's (``cplvad.storage``). Readers
never unpickle: ``.npz`` without pickle, PyTorch files with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cplvad.errors import DataError
from cplvad.storage.atomic import atomic_path

NAME_ERRORS = "surrogateescape"
"""Lists and annotation files are UTF-8 text; bytes that are not valid UTF-8 (a Linux file name may be any
bytes) are read and written back as they are (Python's ``surrogateescape``), so any name round-trips."""


def printable(text: str) -> str:
    """``text`` with the undecodable bytes of the file names it quotes written as ``\\xNN``: a name that is
    not UTF-8 is held as surrogate escapes (``NAME_ERRORS``), which no file encoding, page or
    plotting library takes."""
    try:
        return text.encode("utf-8", NAME_ERRORS).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte (e.g. from a JSON "\\udXXX")
        return text.encode("utf-8", "backslashreplace").decode()


def utf8(text: str) -> bytes:
    """``text`` as the bytes of an output file (document, index, page): valid UTF-8 whatever names it quotes."""
    return printable(text).encode()


def copy_file(src: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Copy a file to ``target`` atomically (and as cplvad's own, see ``atomic_path``)."""
    with atomic_path(target) as tmp:
        shutil.copyfile(src, tmp)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def load_npz(
    path: str | os.PathLike[str], keys: Sequence[str], what: str, remedy: str
) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of an ``.npz`` file, read without pickle. A missing, unreadable or incomplete file
    is a DataError naming ``what`` it is and ending with the ``remedy``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DataError(f"{what} {path}: missing arrays {missing} (expected {list(keys)}); {remedy}")
            return {k: z[k] for k in keys}
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist; {remedy}") from None
    except ValueError as exc:
        raise DataError(f"{what} {path} cannot be read without pickle ({exc}); {remedy}") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{what} {path} is not a readable .npz file ({exc}); {remedy}") from None


def load_torch(path: str | os.PathLike[str], what: str, remedy: str) -> Any:
    """A PyTorch file, read with ``weights_only=True`` (tensors and plain containers; no code runs). A file
    that is missing, truncated, damaged or holds other Python objects is a DataError naming ``what`` it
    should be and ending with the ``remedy``."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; {remedy}") from None
    except pickle.UnpicklingError:
        raise DataError(
            f"{path} is not {what}: it holds Python objects besides weights, which cplvad never "
            f"loads (nothing in it was run); {remedy}"
        ) from None
    except (
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        AttributeError,
        TypeError,
        IndexError,
        KeyError,
    ) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{path} is not {what}: it is truncated or damaged ({detail[:200]}); {remedy}"
        ) from None
