"""Local files and folders a command needs: outputs writable.

An output folder is not created by the check (a failed command leaves nothing behind): a temporary file is
created and removed in the folder, or in its nearest existing parent when the folder does not exist yet.
Weights files are checked by ``cplvad.clip_weights.check_clip_weights``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cplvad.errors import DataError

ZIP_MAGIC = b"PK\x03\x04"


def check_writable_dir(path: str | os.PathLike[str], what: str) -> None:
    """``path`` is, or can become, a folder we can write to; DataError naming ``what`` otherwise."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"{what} {path}: {existing} is a file, not a folder; choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".cplvad-preflight-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataError(
            f"{what} {path} cannot be written ({exc.strerror} in {existing}); "
            "choose a writable location or fix its permissions"
        ) from None
