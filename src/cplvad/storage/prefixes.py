"""Ownership of an ``s3://`` prefix: the local folder rules (``cplvad.storage.ownership``) on an object store.

A prefix cplvad writes gets the marker object ``.cplvad/owner.json`` and, while a command writes, the lock
object (``cplvad.storage.locks.S3Lock``). Objects cannot be appended to, so no per-object record is kept:
a prefix with the marker is cplvad's as a whole, one without it is refused unless it is empty. A claim that
wrote nothing removes its marker again. Claims are re-entrant within a process, like local ones.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from cplvad.storage.location import open_location
from cplvad.storage.locks import S3Lock
from cplvad.storage.ownership import LOCK_NAME, MARKER_DIR, OWNER_FILE, foreign_error, owner_record

_claims: dict[str, int] = {}
_mutex = threading.Lock()


@contextlib.contextmanager
def claim_prefix(uri: str, what: str = "output prefix", *, lock_name: str = LOCK_NAME) -> Iterator[None]:
    """Hold the prefix ``uri`` as an output of this process for the block: checked (only cplvad's objects,
    or none), locked, marked as cplvad's. ``lock_name``: a lock of its own for writers that may share the
    prefix (extraction shards)."""
    key = uri.rstrip("/")
    with _mutex:
        held = key in _claims
        if held:
            _claims[key] += 1
    if held:
        try:
            yield
        finally:
            with _mutex:
                _claims[key] -= 1
        return
    sink = open_location(uri)
    owner_key = f"{MARKER_DIR}/{OWNER_FILE}"

    def refuse_foreign() -> bool:
        """Whether the prefix is cplvad's; ForeignDataError when it holds objects of someone else."""
        if sink.read_bytes(owner_key) is not None:
            return True
        foreign = sorted(k for k in sink.sizes() if not k.startswith(MARKER_DIR + "/"))
        if foreign:
            raise foreign_error(
                what, uri, foreign, "Give a new or empty prefix, or move those objects out of it"
            )
        return False

    refuse_foreign()  # before the lock object is written there
    lock = S3Lock(uri, lock_name, what)
    lock.acquire()
    made = False
    try:
        if not refuse_foreign():
            sink.write_bytes(owner_key, owner_record())
            made = True
        with _mutex:
            _claims[key] = 1
        try:
            yield
        finally:
            with _mutex:
                _claims.pop(key, None)
    finally:
        try:
            if made and not any(not k.startswith(MARKER_DIR + "/") for k in sink.sizes()):
                sink.delete(owner_key)  # nothing was written: leave nothing behind
        finally:
            lock.release()
