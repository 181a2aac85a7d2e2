"""Local files and folders a command needs: outputs writable, weights files loadable.

An output folder is not created by the check (a failed command leaves nothing behind): a temporary file is
created and removed in the folder, or in its nearest existing parent when the folder does not exist yet.
A weights file must be readable and, when it is a zip archive (PyTorch's format since 1.6, and OpenAI's
TorchScript release), its table of contents must read: a truncated download fails here, in milliseconds,
rather than after minutes of work. Safetensors files must hold their whole header.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zipfile
from pathlib import Path

from cplvad.config import ClipConfig
from cplvad.errors import ConfigError, DataError

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


def check_clip_weights(clip: ClipConfig) -> None:
    """``clip.pretrained`` (unless ``none`` or an open_clip tag) is a complete, readable weights file."""
    if clip.pretrained.lower() == "none":
        return
    path = Path(clip.pretrained)
    if not path.is_file():
        from cplvad.clip_weights import is_tag, known_tags

        if is_tag(clip.model, clip.pretrained):  # found in (or downloaded into) the cache when first loaded
            return
        tags = ", ".join(known_tags(clip.model)) or "none for this model"
        raise ConfigError(
            f"clip.pretrained {clip.pretrained!r} is neither a file nor an open_clip pretrained tag of "
            f"{clip.model} ({tags}); give a weights file, a tag or 'none'"
        )
    check_weights_file(path, "clip.pretrained")


def check_weights_file(path: Path, what: str) -> None:
    remedy = "download or copy it again"
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
        if head.startswith(ZIP_MAGIC):
            with zipfile.ZipFile(path) as zf:
                zf.infolist()
        elif path.suffix == ".safetensors":
            (length,) = struct.unpack("<Q", head)
            with path.open("rb") as fh:
                fh.seek(8)
                json.loads(fh.read(length))
    except OSError as exc:
        raise DataError(
            f"{what} {path} cannot be read ({exc.strerror or exc}); check its permissions"
        ) from None
    except (zipfile.BadZipFile, struct.error, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} {path} is truncated or damaged ({exc}); {remedy}") from None
    if not head:
        raise DataError(f"{what} {path} is empty; {remedy}")
