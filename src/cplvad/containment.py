"""Paths read from lists, manifests and S3 listings stay inside the root they are rebased onto.

A list from elsewhere must not make us read or write outside what the user named: a row ``/x/../F.npy``
rebased onto ``features_root`` would otherwise load ``features_root/../F.npy``. The roots: ``features_root``
for the rows of a dataset's feature lists, the bucket for the rows of an ``s3://`` video list, the listed
prefix for an S3 listing, the output folder for the files of an extraction manifest. (A relative row of a
local list is relative to the list's folder but not confined to it: the row could as well be absolute.)
The check is lexical (``..`` may not climb above the root; symbolic links inside it are the user's own
business), so it works the same for local folders and S3 keys, and before the file exists.
"""

from __future__ import annotations

from collections.abc import Sequence


class Escapes(ValueError):
    """A path would leave its root; the message says how (the caller adds where it was read)."""


def inside(parts: Sequence[str], what: str) -> list[str]:
    """The normalised parts of a relative path that stays inside its root (``.`` and ``a/..`` removed)."""
    kept: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not kept:
                raise Escapes(f"{what} climbs above the folder it is relative to ('..')")
            kept.pop()
        elif "/" in part or "\\" in part or "\x00" in part:
            raise Escapes(f"{what} holds a separator or NUL inside a name")
        else:
            kept.append(part)
    if not kept:
        raise Escapes(f"{what} names no file")
    return kept
