"""Where videos come from (``--videos``): local folders, list files, and prefixes on S3 or any filesystem
fsspec knows, read through ``cplvad.storage.location`` (which holds no credentials: see there).

- a folder: every file with a video extension, recursively, in sorted order; a video's label is the name
  of the folder that holds it (UCF layout ``Class/video.mp4``); videos directly in the folder get the
  default label;
- a list file: ``.csv`` with a ``path[,label]`` header, or any other extension with one path per line
  (``#`` comments allowed); relative paths are relative to the list's folder; list order is kept; without
  a label column the label is the holding folder's name (the default label for a bare file name);
- ``s3://bucket/prefix`` (or another ``scheme://``): the same as a folder; ``s3://bucket/key.csv`` (or
  ``.txt``): a list file.
"""

from __future__ import annotations

import csv
import io
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cplvad.containment import Escapes, inside
from cplvad.data.annotations import VIDEO_EXTENSIONS, strip_video_extension
from cplvad.errors import DataError
from cplvad.io import NAME_ERRORS
from cplvad.storage.location import is_url, open_location

LIST_SUFFIXES = (".csv", ".txt", ".lst")


@dataclass(frozen=True)
class VideoSource:
    uri: str
    """Absolute local path or ``s3://bucket/key`` (another ``scheme://`` URI)."""
    name: str
    """File name without extension: the stem of the output files and the video's name in lists."""
    label: str


def list_videos(src: str, default_label: str) -> list[VideoSource]:
    """The videos of ``src`` in processing order (see the module docstring for the forms of ``src``)."""
    if is_url(src):
        if src.lower().endswith(LIST_SUFFIXES):
            return _parse_list(_read_remote_list(src), src, lambda p: _join_remote(src, p), default_label)
        return _list_prefix(src, default_label)
    path = Path(src)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        return [_source(str(p.resolve()), p.relative_to(path).as_posix(), default_label) for p in files]
    if path.is_file():
        base = path.resolve().parent
        text = path.read_bytes().decode("utf-8", errors=NAME_ERRORS)
        return _parse_list(text, src, lambda p: p if is_url(p) else _join_local(base, p), default_label)
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


def _parse_list(
    text: str, where: str, resolve: Callable[[str], str], default_label: str
) -> list[VideoSource]:
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


def _join_remote(list_uri: str, path: str) -> str:
    """A row of the remote list ``list_uri``: a ``scheme://`` URI as written, ``/key`` from the bucket's
    root, else relative to the list's prefix; ``..`` may not climb above the bucket (``Escapes``)."""
    if is_url(path):
        return path
    scheme, _, rest = list_uri.partition("://")
    bucket, _, key = rest.partition("/")
    path = path.replace("\\", "/")
    parts = (
        path.split("/") if path.startswith("/") else [*posixpath.dirname(key).split("/"), *path.split("/")]
    )
    return f"{scheme}://{bucket}/" + "/".join(inside(parts, "the path"))


def _list_prefix(src: str, default_label: str) -> list[VideoSource]:
    location = open_location(src)
    videos = sorted(rel for rel in location.sizes() if PurePosixPath(rel).suffix.lower() in VIDEO_EXTENSIONS)
    for rel in videos:
        if {".", ".."} & set(rel.split("/")):
            raise DataError(
                f"{src}: object {rel!r} has a '.' or '..' segment, which could name another object once "
                "normalised; rename the object (or leave it out of the prefix)"
            )
    return [_source(location.uri(rel), rel, default_label) for rel in videos]


def _read_remote_list(uri: str) -> str:
    folder, _, name = uri.rpartition("/")
    raw = open_location(folder).read_bytes(name)
    if raw is None:
        raise DataError(f"video list {uri} does not exist; check the bucket and the key")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"video list {uri} is not UTF-8 text ({exc}); object keys are UTF-8, so must the list be"
        ) from None
