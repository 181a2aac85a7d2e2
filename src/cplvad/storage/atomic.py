"""Atomic local writes: a reader never sees a half-written file or folder, a failed job leaves nothing behind.

Every local output goes through ``atomic_path`` (a file) or ``atomic_dir`` (a folder), so the ownership
rules (``cplvad.storage.ownership``) hold for every writer: inside a folder that cplvad claimed, a file it
did not write is never overwritten, and each file is recorded as cplvad's before it appears. The file
formats on top (text, JSON, ``.npy`` / ``.npz``) are ``cplvad.io``'s.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from cplvad.storage.ownership import claim_folder, discard, record_write, replace_folder, tmp_prefix


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

    `target` must be new, empty or cplvad's own earlier output (``replace_folder``); that is checked before
    the block runs.
    """
    target = Path(target)
    with claim_folder(target):
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.cplvad-new-", dir=target.parent))
        try:
            with claim_folder(tmp, "staging folder"):
                yield tmp
                replace_folder(tmp, target)
        finally:
            discard(tmp)  # what a failed block staged (all cplvad's); nothing after a success


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
