"""One writer per output folder: a lock taken before any work, naming its holder when it is refused.

A local folder's lock is the file ``.cplvad/<name>`` (``lock``; an extraction shard's ``lock.shardK-of-N``),
held with ``flock`` through filelock while a command writes. The kernel drops it when the process ends,
however it ends, so a lock is never left behind by a dead process; ``.cplvad/<name>.holder.json`` says who
holds it (pid, host, command, since when) and is removed on release, so one found by the next holder was
left by a process that ended without releasing (killed): that is said in a note, and the lock is taken.

An ``s3://`` prefix has no ``flock``: its lock is the object ``.cplvad/<name>``, created only when it is
absent (an S3 conditional write, ``If-None-Match: *``) and rewritten every ``S3_HEARTBEAT`` seconds while
held (``If-Match`` its last ETag, so a holder that lost its lock notices). A lock whose last write is older
than its ``ttl`` by the server's own clock (a crashed pod's) is taken over, again conditionally on its ETag,
with a note. A server that does not implement conditional writes cannot lock: cplvad says so in a warning
and writes without the lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import socket
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from cplvad.errors import BusyError
from cplvad.extras import require
from cplvad.redact import redact

log = logging.getLogger(__name__)

S3_LOCK_TTL = 120.0
"""Seconds after its last heartbeat at which an ``s3://`` lock counts as left by a crashed process."""
S3_HEARTBEAT = 30.0
"""Seconds between the rewrites of a held ``s3://`` lock."""
HOLDER_POLLS, HOLDER_POLL_SECONDS = 20, 0.05
"""How long a refused writer waits for the holder's record: a holder writes it right after locking."""
MAX_COMMAND = 300
"""Characters of the holder's command line kept in its record."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: what a refused writer is told."""

    pid: int
    host: str
    command: str
    since: str

    @classmethod
    def this_process(cls) -> Holder:
        argv = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            command=redact(shlex.join(argv))[:MAX_COMMAND],  # no credential of the command line in a file
            since=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    @classmethod
    def parse(cls, data: bytes | None) -> Holder | None:
        """The holder recorded in ``data``; None when there is none or it cannot be read."""
        try:
            raw = json.loads(data or b"")
            return cls(int(raw["pid"]), str(raw["host"]), str(raw["command"]), str(raw["since"]))
        except (ValueError, TypeError, KeyError):
            return None

    def to_bytes(self, **extra: Any) -> bytes:
        return json.dumps({**asdict(self), **extra}).encode()

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} ({self.command}), since {self.since}"


def _busy(what: str, where: str, holder: Holder | None) -> BusyError:
    who = holder.describe() if holder else "a process that has not recorded itself yet"
    return BusyError(
        f"{what} {where} is being written by another cplvad process: {who}. One writer per folder: wait "
        "for it to finish (or stop it), or give another folder"
    )


class FolderLock:
    """The lock of a local folder: ``acquire`` takes it or raises ``BusyError`` (at once, or after ``wait``
    seconds); ``release``."""

    def __init__(self, marker_dir: Path, name: str, what: str, where: str, *, wait: float = 0.0) -> None:
        from filelock import FileLock

        self.marker_dir, self.name, self.what, self.where = marker_dir, name, what, where
        self._lock = FileLock(marker_dir / name, timeout=wait, thread_local=False)

    @property
    def holder_file(self) -> Path:
        return self.marker_dir / f"{self.name}.holder.json"

    def acquire(self) -> None:
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise _busy(self.what, self.where, self._wait_for_holder()) from None
        left = self._read_holder()
        if left is not None:
            log.warning(
                "%s %s: recovered the lock of %s, which ended without releasing it",
                self.what,
                self.where,
                left.describe(),
            )
        fd, tmp = tempfile.mkstemp(prefix=f".{self.name}.", dir=self.marker_dir)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Holder.this_process().to_bytes())
        os.replace(tmp, self.holder_file)

    def _wait_for_holder(self) -> Holder | None:
        """The holder, given a moment to record itself (it writes its record right after taking the lock)."""
        for _ in range(HOLDER_POLLS):
            holder = self._read_holder()
            if holder is not None:
                return holder
            time.sleep(HOLDER_POLL_SECONDS)
        return None

    def _read_holder(self) -> Holder | None:
        try:
            return Holder.parse(self.holder_file.read_bytes())
        except OSError:
            return None

    def release(self) -> None:
        """Release the lock; its holder record goes first (none is left behind by a clean end)."""
        try:
            self.holder_file.unlink(missing_ok=True)
        finally:
            self._lock.release()


class S3Lock:
    """The lock of an ``s3://`` prefix: the object ``<prefix>/.cplvad/<name>`` (see the module docstring)."""

    def __init__(self, uri: str, name: str, what: str) -> None:
        self.bucket, _, prefix = uri.split("://", 1)[-1].strip("/").partition("/")
        self.key = f"{prefix}/.cplvad/{name}" if prefix else f".cplvad/{name}"
        self.uri, self.what = uri, what
        self._etag: str | None = None
        self._body = b""
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> None:
        client = _s3_client()
        self._body = Holder.this_process().to_bytes(ttl=S3_LOCK_TTL)
        try:
            self._etag = self._put(client, IfNoneMatch="*")
        except client.exceptions.ClientError as exc:
            if _code(exc) in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                log.warning(
                    "%s %s: the S3 server does not support conditional writes (%s), so cplvad cannot lock "
                    "the prefix; make sure no other cplvad process writes there at the same time",
                    self.what,
                    self.uri,
                    _code(exc),
                )
                return
            if _code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
            self._take_over_if_stale(client)
        self._beat = threading.Thread(target=self._heartbeat, name="cplvad-s3-lock", daemon=True)
        self._beat.start()

    def _put(self, client: Any, **condition: str) -> str:
        """Write this process's lock object on ``condition`` (``IfNoneMatch`` / ``IfMatch``); its ETag."""
        return client.put_object(Bucket=self.bucket, Key=self.key, Body=self._body, **condition)["ETag"]

    def _take_over_if_stale(self, client: Any) -> None:
        try:
            current = client.get_object(Bucket=self.bucket, Key=self.key)
        except client.exceptions.NoSuchKey:  # released meanwhile: try once more
            self._etag = self._put(client, IfNoneMatch="*")
            return
        data = current["Body"].read()
        holder = Holder.parse(data)
        now = parsedate_to_datetime(current["ResponseMetadata"]["HTTPHeaders"]["date"])
        age = (now - current["LastModified"]).total_seconds()
        ttl = _ttl(data)
        if age <= ttl:
            raise _busy(self.what, self.uri, holder)
        try:
            self._etag = self._put(client, IfMatch=current["ETag"])
        except client.exceptions.ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise _busy(self.what, self.uri, None) from None  # another process took it over first
            raise
        log.warning(
            "%s %s: recovered the lock of %s, which stopped renewing it %.0f s ago (a crashed process)",
            self.what,
            self.uri,
            holder.describe() if holder else "an unknown process",
            age,
        )

    def _heartbeat(self) -> None:
        client = _s3_client()
        while not self._stop.wait(S3_HEARTBEAT):
            try:
                self._etag = self._put(client, IfMatch=self._etag or "")
            except client.exceptions.ClientError as exc:
                if _code(exc) in ("PreconditionFailed", "NoSuchKey", "ConditionalRequestConflict"):
                    log.error("%s %s: the lock was taken by another process", self.what, self.uri)
                    return
                log.warning("%s %s: cannot renew the lock (%s); trying again", self.what, self.uri, exc)
            except Exception as exc:  # a network error: try again at the next beat
                log.warning("%s %s: cannot renew the lock (%s); trying again", self.what, self.uri, exc)

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=10)
        if self._etag is None:
            return
        client = _s3_client()
        with contextlib.suppress(client.exceptions.ClientError):  # lost or already gone: nothing to release
            client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self._etag)


def _s3_client() -> Any:
    """A boto3 S3 client (endpoint and credentials from the AWS environment): the lock needs S3's
    conditional writes and ETags, which fsspec does not expose. One per process and environment, like the
    locations' filesystems."""
    return _s3_client_for(os.getpid(), frozenset(os.environ.items()))


@lru_cache(maxsize=4)
def _s3_client_for(pid: int, environment: frozenset[tuple[str, str]]) -> Any:
    """(``pid`` and ``environment`` only key the cache.)"""
    return require("boto3", "locking s3:// prefixes").client("s3")


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _ttl(data: bytes) -> float:
    try:
        return float(json.loads(data)["ttl"])
    except (ValueError, TypeError, KeyError):
        return S3_LOCK_TTL
