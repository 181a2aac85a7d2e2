"""What ``cplvad predict`` is pointed at: video files, folders (searched recursively for videos and
``.npy`` feature files), ``.npy`` feature files ((T, D) float arrays, as ``cplvad extract`` writes them),
``s3://bucket/prefix`` (its videos, or a list file ``s3://bucket/list.csv``, as ``cplvad extract --videos``
reads them) and network streams (any other ``scheme://`` URL that FFmpeg opens: rtsp, rtmp, http(s), tcp,
udp, ...; scored with ``--live``).

Any file that is not ``.npy`` is treated as a video (an unreadable one fails with its reason). Outputs are
named after the input's file name without extension (a stream: after its host, port and path), so two
inputs with the same name are refused. A URL's credentials (user info, secret query parameters) are never
printed or recorded (``display``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cplvad.data.annotations import VIDEO_EXTENSIONS, strip_video_extension
from cplvad.errors import DataError
from cplvad.redact import strip_credentials
from cplvad.storage.location import is_s3

FEATURE_SUFFIX = ".npy"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Input:
    uri: str
    """A local path, ``s3://bucket/key`` or a stream URL."""
    kind: str
    """``video``, ``features`` or ``stream`` (a network source, scored live)."""
    name: str = ""
    """Output name (default: from ``uri``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "uri", str(self.uri))
        if not self.name:
            object.__setattr__(
                self, "name", stream_name(self.uri) if self.kind == "stream" else _stem(self.uri)
            )

    @property
    def path(self) -> Path:
        return Path(self.uri)

    @property
    def is_local(self) -> bool:
        return not _URL.match(self.uri)

    @property
    def display(self) -> str:
        """The URI as printed and recorded: without the credentials of a URL."""
        return strip_credentials(self.uri)


def is_stream_url(text: str) -> bool:
    return bool(_URL.match(text)) and not is_s3(text) and not text.lower().startswith("file://")


def stream_name(url: str) -> str:
    """``rtsp://user:pw@cam1.local:554/live/ch1`` -> ``cam1.local-554-live-ch1``."""
    parts = urlsplit(url)
    text = "-".join(x for x in (parts.hostname, str(parts.port or ""), parts.path.strip("/")) if x)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "stream"


def _stem(uri: str) -> str:
    return strip_video_extension(uri.rstrip("/").rsplit("/", 1)[-1]) if is_s3(uri) else Path(uri).stem


def _kind(path: Path) -> str:
    return "features" if path.suffix.lower() == FEATURE_SUFFIX else "video"


def _expand(given: str) -> list[Input]:
    if is_stream_url(given):
        return [Input(given, "stream")]
    if is_s3(given):
        from cplvad.extract.runner import select_videos

        return [Input(v.uri, "video", v.name) for _, v in select_videos(given, "Normal", None)]
    path = Path(given)
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in (*VIDEO_EXTENSIONS, FEATURE_SUFFIX)
        )
        if not files:
            raise DataError(
                f"{path} holds no video ({', '.join(VIDEO_EXTENSIONS)}) and no {FEATURE_SUFFIX} feature file"
            )
        return [Input(p, _kind(p)) for p in files]
    if path.exists():
        return [Input(path, _kind(path))]
    raise DataError(
        f"{path} does not exist; give video files, folders, .npy feature files, s3://bucket/prefix or a stream URL"
    )


def list_inputs(paths: Sequence[str | Path]) -> list[Input]:
    """Expand folders and S3 prefixes, check that everything exists and that output names are unique."""
    found = [item for given in paths for item in _expand(str(given))]
    if not found:
        raise DataError(f"no video found in {', '.join(strip_credentials(str(p)) for p in paths)}")
    seen: dict[str, Input] = {}
    for item in found:
        if item.name in seen:
            raise DataError(
                f"two inputs are named {item.name!r} ({seen[item.name].display} and {item.display}); outputs are "
                "named OUT/<name>.json, so names must be unique: predict them in separate runs (different --out)"
            )
        seen[item.name] = item
    return found
