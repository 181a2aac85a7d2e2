"""Locations: a folder or prefix on any filesystem fsspec knows, read and written by relative path.

``open_location("outputs/run1")`` is a local folder, ``open_location("s3://bucket/prefix")`` an S3 prefix
(s3fs), and any other ``scheme://`` that fsspec has a filesystem for (``gs://``, ``az://``, ``memory://``...)
works the same once its package is installed. Callers name objects by relative POSIX path and never see
the filesystem.

Whole-object writes are atomic: on the local disk a temporary file renamed into place
(``cplvad.storage.atomic.atomic_path``); on an object store one PUT (a large file one multipart upload,
which the store publishes whole), so a reader sees the old object or the new one, never a part. (A remote
filesystem that is not an object store, such as SFTP, writes as it writes.)

S3 endpoint and credentials come only from the standard AWS environment (``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_S3`` for an S3-compatible server, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``, profiles), read when a filesystem is made; nothing here holds credentials. A
filesystem is made once per process and environment: a forked decode worker, or a call after the AWS
variables changed, gets a fresh one (fsspec's own instance cache would hand out one made earlier, whose
connections belong to another process). Listings are never cached: s3fs would otherwise answer from a
listing made before this process wrote or deleted. fsspec and s3fs are imported only when a location
needs them.

A remote filesystem's errors become a ``DataError`` naming the URI, with the reason in the words of
``cplvad.failures``; local ones stay ``OSError``s, which name their path.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from cplvad.errors import CplvadError, DataError
from cplvad.extras import require
from cplvad.failures import describe
from cplvad.storage.atomic import atomic_path, damaged_name

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
LOCAL_SCHEMES = ("file", "local")
S3_SCHEMES = ("s3", "s3a")
QUICK_TIMEOUT = 5
"""Seconds a quick S3 location (the preflight's probes) waits to connect or for an answer; two attempts."""


def is_url(uri: str | os.PathLike[str]) -> bool:
    """Whether ``uri`` is on another filesystem than the local disk (``scheme://...``, not ``file://``)."""
    match = _SCHEME.match(str(uri))
    return match is not None and match.group(1).lower() not in LOCAL_SCHEMES


def is_s3(uri: str | os.PathLike[str]) -> bool:
    """Whether a location is an S3 object or prefix (``s3://bucket/key``) rather than a local path."""
    return str(uri).startswith("s3://")


class Location:
    """A root folder or prefix: relative POSIX paths in, whole objects written atomically."""

    def __init__(self, fs: AbstractFileSystem, root: str, given: str, local: Path | None) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        """The root as the filesystem names it (``bucket/prefix``, ``/abs/folder``)."""
        self.local = local
        """The root as a local path (as given, relative or not), or None on a remote filesystem."""
        self._base = given.rstrip("/")

    def uri(self, rel: str) -> str:
        return str(self.local / rel) if self.local is not None else f"{self._base}/{rel}"

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def write_bytes(self, rel: str, data: bytes) -> None:
        if self.local is not None:
            with atomic_path(self.local / rel) as tmp:
                tmp.write_bytes(data)
            return
        with self._failing("write", rel):
            self.fs.pipe_file(self._path(rel), data)

    def read_bytes(self, rel: str) -> bytes | None:
        """The object's content, or None when it does not exist."""
        with self._failing("read", rel):
            try:
                return self.fs.cat_file(self._path(rel))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None

    def sizes(self) -> dict[str, int]:
        """Size in bytes of every object under the root, by relative path (a missing root holds none)."""
        with self._failing("list", ""):
            found = self.fs.find(self.root, detail=True)
        inside = f"{self.root}/"
        return {
            name[len(inside) :]: int(info["size"])
            for name, info in found.items()
            if name.startswith(inside) and not name.endswith("/") and info["type"] == "file"
        }

    def put_file(self, rel: str, path: Path) -> None:
        """Copy a local file to ``rel`` without holding it in memory (checkpoints are hundreds of MB)."""
        if self.local is not None:
            with atomic_path(self.local / rel) as tmp:
                shutil.copyfile(path, tmp)
            return
        with self._failing("write", rel):
            self.fs.put_file(str(path), self._path(rel))

    def get_file(self, rel: str, path: Path) -> bool:
        """Copy ``rel`` to the local ``path`` (atomically); False when it does not exist."""
        with self._failing("read", rel):
            try:
                if self.fs.info(self._path(rel))["type"] != "file":
                    return False
            except FileNotFoundError:
                return False
            with atomic_path(path) as tmp:
                self.fs.get_file(self._path(rel), str(tmp))
        return True

    def delete(self, rel: str) -> None:
        """Remove ``rel``; nothing happens when it does not exist."""
        with self._failing("delete", rel), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(rel))

    def name_problem(self, rel: str) -> str | None:
        """Why ``rel`` cannot name an object here, or None (a local file name may be any bytes)."""
        if self.local is not None:
            return None
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            return (
                "its name is not valid UTF-8, which object keys must be; rename the file, or extract to a "
                "local folder (lists keep such names byte for byte)"
            )
        return None

    def set_aside(self, rel: str) -> str:
        """Copy a damaged object to ``<rel>.damaged-<time>`` (kept for inspection); its URI."""
        aside = damaged_name(rel)
        self.write_bytes(aside, self.read_bytes(rel) or b"")
        return self.uri(aside)

    @contextlib.contextmanager
    def _failing(self, action: str, rel: str) -> Iterator[None]:
        """A remote filesystem's error as a DataError naming the URI; local errors as they are."""
        try:
            yield
        except storage_errors() as exc:
            if self.local is not None:
                raise
            raise DataError(f"cannot {action} {self.uri(rel)}: {describe(exc).message}") from None


def open_location(uri: str | os.PathLike[str], *, quick: bool = False) -> Location:
    """The location ``uri`` names: a local folder (``file://`` or none) or ``scheme://root/prefix``.

    ``quick``: an S3 location that gives up after ``QUICK_TIMEOUT`` seconds and two attempts (preflight).
    """
    fs, root = filesystem_path(uri, quick=quick)
    uri = str(uri)
    if not is_url(uri):
        return Location(fs, root, uri, _local_path(uri))
    if not root.strip("/"):
        raise DataError(f"{uri!r} names no bucket; expected {uri.split('://')[0]}://bucket/prefix")
    return Location(fs, root, uri, None)


def filesystem_path(uri: str | os.PathLike[str], *, quick: bool = False) -> tuple[AbstractFileSystem, str]:
    """The filesystem of ``uri`` and the path it knows it by."""
    uri = str(uri)
    match = _SCHEME.match(uri)
    scheme = match.group(1).lower() if match and is_url(uri) else "file"
    if scheme in S3_SCHEMES:
        require("s3fs", "reading or writing s3:// paths")
    fs = _filesystem(scheme, quick and scheme in S3_SCHEMES, os.getpid(), frozenset(os.environ.items()))
    return fs, fs._strip_protocol(uri)


def _local_path(uri: str) -> Path:
    """A local location as a path: ``file:///a/b`` or ``/a/b`` -> ``Path("/a/b")``."""
    return Path(_SCHEME.sub("", uri))


@lru_cache(maxsize=8)
def _filesystem(
    scheme: str, quick: bool, pid: int, environment: frozenset[tuple[str, str]]
) -> AbstractFileSystem:
    """One filesystem per scheme, process (``pid``) and ``environment`` (both only key the cache)."""
    import fsspec

    try:
        cls = fsspec.get_filesystem_class(scheme)
    except ValueError:
        raise DataError(
            f"no filesystem is known for {scheme}:// paths (fsspec has none by that name)"
        ) from None
    except ImportError as exc:
        raise CplvadError(f"{scheme}:// paths need a package that is not installed here: {exc}") from None
    options: dict[str, object] = {"skip_instance_cache": True, "use_listings_cache": False}
    if quick:
        retries = {"total_max_attempts": 2, "mode": "standard"}
        options["config_kwargs"] = {
            "connect_timeout": QUICK_TIMEOUT,
            "read_timeout": QUICK_TIMEOUT,
            "retries": retries,
        }
    fs = cls(**options)
    if quick:
        fs.retries = 1  # s3fs's own retries, on top of botocore's
    return fs


def storage_errors() -> tuple[type[BaseException], ...]:
    """What a filesystem call raises when storage fails: ``OSError`` (s3fs turns S3 error codes into
    ``FileNotFoundError``, ``PermissionError``...), and the errors of botocore (connection, credentials),
    aiohttp and fsspec (timeouts) where they are loaded (none of them can be raised otherwise)."""
    found: list[type[BaseException]] = [OSError]
    for module, names in (
        ("botocore.exceptions", ("BotoCoreError", "ClientError")),
        ("aiohttp", ("ClientError",)),
        ("fsspec.exceptions", ("FSTimeoutError",)),
    ):
        if module in sys.modules:
            found += [getattr(sys.modules[module], name) for name in names]
    return tuple(found)


def object_size(uri: str) -> int | None:
    """Size in bytes of a file or object; None when it cannot be read."""
    fs, path = filesystem_path(uri)
    try:
        info = fs.info(path)
    except storage_errors():
        return None
    return int(info["size"]) if info["type"] == "file" else None


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A local file for ``uri``: the file itself, or a temporary download of a remote one.

    Raises ``OSError`` with the reason when it cannot be read.
    """
    if not is_url(uri):
        if not _local_path(uri).is_file():
            raise FileNotFoundError(f"{uri} does not exist")
        yield _local_path(uri)
        return
    fs, path = filesystem_path(uri)
    tmp = Path(tempfile.mkdtemp(prefix="cplvad-video-"))
    try:
        target = tmp / PurePosixPath(path).name
        try:
            fs.get_file(path, str(target))
        except storage_errors() as exc:
            raise OSError(f"cannot read {uri}: {describe(exc).message}") from None
        yield target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
