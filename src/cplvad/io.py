"""Atomic file output: a reader never sees a half-written artifact, a failed job leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cplvad.errors import DataError
from cplvad.storage.ownership import claim_folder, discard, record_write, replace_folder, tmp_prefix

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


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path; move it onto `target` only if the block succeeds.

    `suffix` keeps an extension that a writer insists on (``np.save`` appends ``.npy``). Inside an output
    folder that cplvad claimed (``cplvad.storage.ownership``), a file it did not write is never overwritten
    (ForeignDataError), the file is recorded as cplvad's before it appears, and the temporary file waits in
    the folder's ``.cplvad/tmp/``; elsewhere it waits beside `target`.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = record_write(target)
    prefix = tmp_prefix(target.name) if tmp_dir is not None else f".{target.name}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=f".tmp{suffix}", dir=tmp_dir or target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new folder beside `target`; it replaces `target` only if the block succeeds.

    `target` must be new, empty or cplvad's own earlier output (``replace_dir``); that is checked before
    the block runs.
    """
    target = Path(target)
    with claim_folder(target):
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.cplvad-new-", dir=target.parent))
        try:
            with claim_folder(tmp, "staging folder"):
                yield tmp
                replace_dir(tmp, target)
        finally:
            discard(tmp)  # what a failed block staged (all cplvad's); nothing after a success


def replace_dir(src: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Put the finished folder ``src`` in the place of ``target``, on the same file system: ``target`` must be
    new, empty or cplvad's own, and only the files cplvad wrote there are deleted (a file of anyone else is
    refused, never touched; see ``cplvad.storage.ownership.replace_folder``)."""
    replace_folder(src, target)


def copy_file(src: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Copy a file to ``target`` atomically (and as cplvad's own, see ``atomic_path``)."""
    with atomic_path(target) as tmp:
        shutil.copyfile(src, tmp)


def is_s3(uri: str) -> bool:
    """Whether a location is an S3 object or prefix (``s3://bucket/key``) rather than a local path."""
    return str(uri).startswith("s3://")


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


def damaged_name(name: str) -> str:
    """``checkpoint.pt`` -> ``checkpoint.pt.damaged-20260101T120000Z``: where damaged state is kept."""
    return f"{name}.damaged-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}"


def set_aside(path: str | os.PathLike[str]) -> Path:
    """Rename a damaged file beside itself (kept for inspection, out of the way of a fresh start)."""
    path = Path(path)
    aside = path.with_name(damaged_name(path.name))
    record_write(aside)  # in an output folder: the kept copy is cplvad's too
    os.replace(path, aside)
    return aside


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
