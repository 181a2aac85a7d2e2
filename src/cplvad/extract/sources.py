"""Where videos come from and features go: local folders, list files, and ``s3://bucket/prefix``.

S3 goes through ``boto3.client("s3")``, so the endpoint and credentials come from the standard AWS
environment (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` for an S3-compatible server such as MinIO,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, profiles). Nothing here holds
credentials. boto3 is imported only when an ``s3://`` path is used.

Sources (``--videos``):
- a folder: every file with a video extension, recursively, in sorted order; a video's label is the name
  of the folder that holds it (UCF layout ``Class/video.mp4``); videos directly in the folder get the
  default label;
- a list file: ``.csv`` with a ``path[,label]`` header, or any other extension with one path per line
  (``#`` comments allowed); relative paths are relative to the list's folder; list order is kept; without
  a label column the label is the holding folder's name (the default label for a bare file name);
- ``s3://bucket/prefix``: the same as a folder; ``s3://bucket/key.csv`` (or ``.txt``): a list file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from cplvad.containment import Escapes, inside
from cplvad.data.annotations import VIDEO_EXTENSIONS, strip_video_extension
from cplvad.errors import DataError
from cplvad.extras import require
from cplvad.io import NAME_ERRORS, atomic_path, damaged_name, is_s3

LIST_SUFFIXES = (".csv", ".txt", ".lst")


@dataclass(frozen=True)
class VideoSource:
    uri: str
    """Absolute local path or ``s3://bucket/key``."""
    name: str
    """File name without extension: the stem of the output files and the video's name in lists."""
    label: str


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ("bucket", "a/b")."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise DataError(f"{uri!r} is not an S3 URI; expected s3://bucket/prefix")
    return bucket, key


@cache
def s3_client() -> Any:
    """One client per process (decode workers make their own); config from the AWS environment."""
    return require("boto3", "reading or writing s3:// paths").client("s3")


def s3_error(action: str, uri: str, exc: Exception) -> str:
    return f"cannot {action} {uri} ({type(exc).__name__}: {exc})"


def s3_exceptions() -> tuple[type[Exception], ...]:
    exceptions = require("botocore.exceptions", "reading or writing s3:// paths")
    return (exceptions.BotoCoreError, exceptions.ClientError)


# ----------------------------------------------------------------------------------------------- sources


def list_videos(src: str, default_label: str) -> list[VideoSource]:
    """The videos of ``src`` in processing order (see the module docstring for the forms of ``src``)."""
    if is_s3(src):
        if src.lower().endswith(LIST_SUFFIXES):
            bucket, key = split_s3(src)
            text = _read_s3_text(src)
            return _parse_list(
                text, src, lambda p: _join_s3(bucket, posixpath.dirname(key), p), default_label
            )
        return _list_s3_prefix(src, default_label)
    path = Path(src)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        return [_source(str(p.resolve()), p.relative_to(path).as_posix(), default_label) for p in files]
    if path.is_file():
        base = path.resolve().parent
        text = path.read_bytes().decode("utf-8", errors=NAME_ERRORS)
        return _parse_list(text, src, lambda p: p if is_s3(p) else _join_local(base, p), default_label)
    raise DataError(
        f"--videos {src!r} does not exist; give a folder of videos, a list file or s3://bucket/prefix"
    )


def _source(
    uri: str, listed: str, default_label: str, label: str | None = None, *, listed_in_file: bool = False
) -> VideoSource:
    """``listed`` is the path as written (relative to the source root or list): it decides the label. In a
    list file (``listed_in_file``) a backslash separates folders (a list written on Windows); in a folder
    or an S3 listing it is part of a name."""
    rel = PurePosixPath(listed.replace("\\", "/") if listed_in_file else listed)
    name = strip_video_extension(rel.name)
    if label is None:
        label = rel.parent.name if rel.parent.name not in ("", ".", "..") else default_label
    return VideoSource(uri=uri, name=name, label=label)


def _list_entries(text: str, where: str) -> list[tuple[int, str, str | None]]:
    """(line, path, label or None) of every video a list names."""
    if not where.lower().endswith(".csv"):
        lines = ((n, line.strip()) for n, line in enumerate(text.splitlines(), start=1))
        return [(n, line, None) for n, line in lines if line and not line.startswith("#")]
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        if not header or header[0] != "path" or header[1:2] not in ([], ["label"]):
            raise DataError(
                f"{where}: a CSV video list needs the header 'path,label' (or 'path'), got {header}"
            )
        return [
            (reader.line_num, r[0].strip(), r[1].strip() if len(r) > 1 and r[1].strip() else None)
            for r in reader
            if r and r[0].strip()
        ]
    except csv.Error as exc:
        raise DataError(f"{where}:{reader.line_num}: not a valid CSV line ({exc})") from None


def _parse_list(text: str, where: str, resolve: Any, default_label: str) -> list[VideoSource]:
    entries = _list_entries(text, where)
    if not entries:
        raise DataError(f"video list {where} names no videos")
    sources = []
    for line, path, label in entries:
        if "\x00" in path + (label or ""):
            raise DataError(f"{where}:{line}: the row holds a NUL character, which no file name can hold")
        try:
            sources.append(_source(resolve(path), path, default_label, label, listed_in_file=True))
        except Escapes as exc:
            raise DataError(
                f"{where}:{line}: row {path!r} is refused: {exc}, outside the bucket; fix the row"
            ) from None
    return sources


def _join_local(base: Path, path: str) -> str:
    """A list row's local file: absolute as written, else relative to the list's folder ``base`` (which
    confines nothing: the row could as well be absolute)."""
    return str((base / path.replace("\\", "/")).resolve())


def _join_s3(bucket: str, prefix: str, path: str) -> str:
    """A list row's object: an ``s3://`` URI as written, ``/key`` from the bucket's root, else relative to
    the list's prefix; ``..`` may not climb above the bucket (``Escapes``)."""
    if is_s3(path):
        return path
    path = path.replace("\\", "/")
    parts = path.split("/") if path.startswith("/") else [*prefix.split("/"), *path.split("/")]
    return f"s3://{bucket}/" + "/".join(inside(parts, "the path"))


def _list_s3_prefix(src: str, default_label: str) -> list[VideoSource]:
    bucket, prefix = split_s3(src.rstrip("/"))
    prefix = f"{prefix}/" if prefix else ""
    keys = []
    try:
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
    except s3_exceptions() as exc:
        raise DataError(
            s3_error("list", src, exc) + "; check the bucket, the prefix and the AWS_* variables"
        ) from None
    videos = sorted(k for k in keys if PurePosixPath(k).suffix.lower() in VIDEO_EXTENSIONS)
    for k in videos:
        if {".", ".."} & set(k[len(prefix) :].split("/")):
            raise DataError(
                f"{src}: object key {k!r} has a '.' or '..' segment, which could name another object "
                "once normalised; rename the object (or leave it out of the prefix)"
            )
    return [_source(f"s3://{bucket}/{k}", k[len(prefix) :], default_label) for k in videos]


def _read_s3_text(uri: str) -> str:
    bucket, key = split_s3(uri)
    try:
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    except s3_exceptions() as exc:
        raise DataError(s3_error("read", uri, exc)) from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"video list {uri} is not UTF-8 text ({exc}); S3 keys are UTF-8, so must the list be"
        ) from None


def object_size(uri: str) -> int | None:
    """Size in bytes of a local file or an S3 object; None when it cannot be read."""
    if not is_s3(uri):
        return Path(uri).stat().st_size if Path(uri).is_file() else None
    bucket, key = split_s3(uri)
    try:
        return int(s3_client().head_object(Bucket=bucket, Key=key)["ContentLength"])
    except s3_exceptions():
        return None


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A local file for ``uri``: the file itself, or a temporary download of an S3 object.

    Raises ``OSError`` with the reason when the object cannot be read.
    """
    if not is_s3(uri):
        if not Path(uri).is_file():
            raise FileNotFoundError(f"{uri} does not exist")
        yield Path(uri)
        return
    bucket, key = split_s3(uri)
    tmp = Path(tempfile.mkdtemp(prefix="cplvad-video-"))
    try:
        target = tmp / PurePosixPath(key).name
        try:
            s3_client().download_file(bucket, key, str(target))
        except s3_exceptions() as exc:
            raise OSError(s3_error("read", uri, exc)) from None
        yield target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- sinks


class Sink:
    """The output root: relative POSIX paths in, whole objects written atomically."""

    def uri(self, rel: str) -> str:
        raise NotImplementedError

    def write_bytes(self, rel: str, data: bytes) -> None:
        raise NotImplementedError

    def read_bytes(self, rel: str) -> bytes | None:
        """The object's content, or None when it does not exist."""
        raise NotImplementedError

    def sizes(self) -> dict[str, int]:
        """Size in bytes of every object under the root, by relative path."""
        raise NotImplementedError

    def put_file(self, rel: str, path: Path) -> None:
        """Copy a local file to ``rel`` without holding it in memory (checkpoints are hundreds of MB)."""
        raise NotImplementedError

    def get_file(self, rel: str, path: Path) -> bool:
        """Copy ``rel`` to the local ``path`` (atomically); False when it does not exist."""
        raise NotImplementedError

    def delete(self, rel: str) -> None:
        """Remove ``rel``; nothing happens when it does not exist."""
        raise NotImplementedError

    def name_problem(self, rel: str) -> str | None:
        """Why ``rel`` cannot name an object here, or None."""
        return None

    def set_aside(self, rel: str) -> str:
        """Copy a damaged object to ``<rel>.damaged-<time>`` (kept for inspection); its URI."""
        aside = damaged_name(rel)
        self.write_bytes(aside, self.read_bytes(rel) or b"")
        return self.uri(aside)


class LocalSink(Sink):
    def __init__(self, root: Path) -> None:
        self.root = root

    def uri(self, rel: str) -> str:
        return str(self.root / rel)

    def write_bytes(self, rel: str, data: bytes) -> None:
        with atomic_path(self.root / rel) as tmp:
            tmp.write_bytes(data)

    def read_bytes(self, rel: str) -> bytes | None:
        path = self.root / rel
        return path.read_bytes() if path.is_file() else None

    def sizes(self) -> dict[str, int]:
        out = {}
        for dirpath, _, files in os.walk(self.root):
            for f in files:
                p = Path(dirpath, f)
                out[p.relative_to(self.root).as_posix()] = p.stat().st_size
        return out

    def put_file(self, rel: str, path: Path) -> None:
        with atomic_path(self.root / rel) as tmp:
            shutil.copyfile(path, tmp)

    def get_file(self, rel: str, path: Path) -> bool:
        if not (self.root / rel).is_file():
            return False
        with atomic_path(path) as tmp:
            shutil.copyfile(self.root / rel, tmp)
        return True

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)


class S3Sink(Sink):
    """S3 PUTs are atomic per object: a reader sees the old object or the whole new one."""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""

    def uri(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{rel}"

    def name_problem(self, rel: str) -> str | None:
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            return (
                "its name is not valid UTF-8, which S3 keys must be; rename the file, or extract to a local "
                "folder (lists keep such names byte for byte)"
            )
        return None

    def write_bytes(self, rel: str, data: bytes) -> None:
        try:
            s3_client().put_object(Bucket=self.bucket, Key=self.prefix + rel, Body=data)
        except s3_exceptions() as exc:
            raise DataError(s3_error("write", self.uri(rel), exc)) from None

    def read_bytes(self, rel: str) -> bytes | None:
        client = s3_client()
        try:
            return client.get_object(Bucket=self.bucket, Key=self.prefix + rel)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
        except s3_exceptions() as exc:
            raise DataError(s3_error("read", self.uri(rel), exc)) from None

    def sizes(self) -> dict[str, int]:
        out = {}
        try:
            for page in (
                s3_client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
            ):
                out.update({o["Key"][len(self.prefix) :]: int(o["Size"]) for o in page.get("Contents", [])})
        except s3_exceptions() as exc:
            raise DataError(s3_error("list", self.uri(""), exc)) from None
        return out

    def put_file(self, rel: str, path: Path) -> None:
        try:
            s3_client().upload_file(str(path), self.bucket, self.prefix + rel)
        except s3_exceptions() as exc:
            raise DataError(s3_error("write", self.uri(rel), exc)) from None

    def get_file(self, rel: str, path: Path) -> bool:
        client = s3_client()
        try:
            client.head_object(Bucket=self.bucket, Key=self.prefix + rel)
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise DataError(s3_error("read", self.uri(rel), exc)) from None
        try:
            with atomic_path(path) as tmp:
                client.download_file(self.bucket, self.prefix + rel, str(tmp))
        except s3_exceptions() as exc:
            raise DataError(s3_error("read", self.uri(rel), exc)) from None
        return True

    def delete(self, rel: str) -> None:
        try:
            s3_client().delete_object(Bucket=self.bucket, Key=self.prefix + rel)
        except s3_exceptions() as exc:
            raise DataError(s3_error("delete", self.uri(rel), exc)) from None


def open_sink(dst: str) -> Sink:
    if is_s3(dst):
        bucket, prefix = split_s3(dst)
        return S3Sink(bucket, prefix)
    return LocalSink(Path(dst))
