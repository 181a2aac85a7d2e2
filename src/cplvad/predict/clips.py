"""Short browser-playable clips of detected events, for the review page: ``OUT/clips/<name>/<k>-<a>-<b>-<id>.mp4``.

Browsers play few of the codecs cameras and datasets use (MPEG-4 Part 2, H.265 and MJPEG fail in Chromium), so
each event of a video input gets its own clip, re-encoded with PyAV: H.264 in MP4 (``faststart``: it plays
while it loads) where the FFmpeg build has libx264, else VP9 in WebM. A clip covers the event, its first
``clip_max_s`` seconds at most, with ``clip_context_s`` seconds of context before and after. Frames
``[a, b)`` of the source are in its name, with a digest of the input's path and size, so a clip that is
already there is not encoded again, and one of a video that changed is. One pass of decoding serves every
clip of a video (a seek to the first one). Clips of events that no longer exist (the video was scored
again) are removed; nothing else in ``clips/`` is touched.

Only ``video`` inputs get clips: a feature file has no pictures, and a live source's video is not kept.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from cplvad.config import PredictConfig
from cplvad.extract.video import VideoError, open_video
from cplvad.io import NAME_ERRORS
from cplvad.storage.location import Location, is_s3, local_copy

CLIP_FOLDER = "clips"
ENCODERS = (
    ("libx264", ".mp4", {"preset": "veryfast", "crf": "23"}, {"movflags": "+faststart"}),
    ("libvpx-vp9", ".webm", {"crf": "34", "b": "0", "deadline": "realtime", "cpu-used": "8"}, {}),
)
"""(codec, extension, codec options, container options), in order of preference."""


@dataclass(frozen=True)
class ClipSettings:
    context_s: float = 3.0
    max_s: float = 30.0

    @classmethod
    def of(cls, predict: PredictConfig) -> ClipSettings:
        return cls(predict.clip_context_s, predict.clip_max_s)


@dataclass(frozen=True)
class Clip:
    event: int
    start_frame: int
    end_frame: int
    """Exclusive."""
    rel: str
    """Path under OUT."""
    start_s: float
    """Where the clip starts in the video."""


def encoder() -> tuple[str, str, dict[str, str], dict[str, str]]:
    """The first of ``ENCODERS`` this FFmpeg build has."""
    for entry in ENCODERS:
        try:
            av.codec.Codec(entry[0], "w")
            return entry
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
    raise VideoError(f"this FFmpeg build has none of the clip encoders {[e[0] for e in ENCODERS]}")


def local_video(doc: dict[str, Any], root: Path | None, kinds: tuple[str, ...] = ("video",)) -> str | None:
    """The input of a prediction document of one of ``kinds`` as a readable file: the path as given
    (absolute, or relative to the working directory or to ``root``), or an ``s3://`` URI; None when it
    cannot be found."""
    if doc.get("input_kind") not in kinds or not doc.get("input"):
        return None
    given = str(doc["input"])
    if is_s3(given):
        return given
    path = Path(given)
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, *([root / path] if root else [])]
    return next((str(c) for c in candidates if c.is_file()), None)


def plan_clips(name: str, doc: dict[str, Any], settings: ClipSettings) -> list[Clip]:
    """The clip of every event of ``doc`` (none without a frame rate)."""
    fps = doc.get("fps")
    if not fps:
        return []
    frames = int(doc.get("frames") or 0)
    context, longest = round(settings.context_s * fps), round(settings.max_s * fps)
    digest = hashlib.sha256(f"{doc.get('input')}\n{doc.get('input_bytes')}".encode("utf-8", NAME_ERRORS))
    ext = encoder()[1]
    clips = []
    for k, e in enumerate(doc.get("events") or []):
        a = max(0, e["start_frame"] - context)
        b = min(frames or e["end_frame"] + context, min(e["end_frame"], e["start_frame"] + longest) + context)
        rel = f"{CLIP_FOLDER}/{name}/{k:03d}-{a}-{b}-{digest.hexdigest()[:10]}{ext}"
        clips.append(Clip(k, a, b, rel, a / fps))
    return clips


def write_clips(sink: Location, name: str, doc: dict[str, Any], settings: ClipSettings) -> dict[int, Clip]:
    """Encode the missing clips of ``doc`` into ``sink``; returns the clip of every event (by event number)
    that is there. A video that cannot be read gets no clips (the page says so)."""
    root = sink.local.resolve() if sink.local is not None else None
    source = local_video(doc, root)
    if source is None:
        return {}
    clips = plan_clips(name, doc, settings)
    existing = {rel for rel in sink.sizes() if rel.startswith(f"{CLIP_FOLDER}/{name}/")}
    for stale in existing - {c.rel for c in clips}:
        sink.delete(stale)
    missing = [c for c in clips if c.rel not in existing]
    if missing:
        try:
            with local_copy(source) as path, tempfile.TemporaryDirectory(prefix="cplvad-clips-") as tmp:
                for clip, file in _encode(path, missing, Path(tmp)):
                    sink.put_file(clip.rel, file)
        except (VideoError, av.FFmpegError, OSError):
            pass  # the clips written so far are kept; the others are left out of the page
    there = set(sink.sizes())
    return {c.event: c for c in clips if c.rel in there}


def _encode(path: Path, clips: list[Clip], tmp: Path) -> Iterator[tuple[Clip, Path]]:
    """Decode ``path`` once from the first clip's start, encoding every frame into the clips that hold it."""
    codec, ext, options, container_options = encoder()
    first = min(c.start_frame for c in clips)
    last = max(c.end_frame for c in clips)
    writers: dict[Clip, _Writer] = {}
    try:
        with open_video(path) as (container, stream):
            fps = Fraction(stream.average_rate or stream.guessed_rate or 25).limit_denominator(1001)
            offset = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            if first / fps > 2:  # seek to the key frame before the first clip (a second early)
                container.seek(int((first / fps + offset - 1) / stream.time_base), stream=stream)
            for frame in container.decode(stream):
                index = round((float(frame.time) - offset) * fps)
                if index >= last:
                    break
                for clip in clips:
                    if clip.start_frame <= index < clip.end_frame:
                        if clip not in writers:
                            writers[clip] = _Writer(
                                tmp / f"{clip.event}{ext}", codec, options, container_options
                            )
                        writers[clip].add(frame, index - clip.start_frame, fps)
                for clip in [c for c in writers if index + 1 >= c.end_frame]:
                    yield clip, writers.pop(clip).finish()
        for clip in list(writers):  # the video ended inside these clips
            yield clip, writers.pop(clip).finish()
    finally:
        for writer in writers.values():
            writer.out.close()


class _Writer:
    """One clip being encoded."""

    def __init__(
        self, file: Path, codec: str, options: dict[str, str], container_options: dict[str, str]
    ) -> None:
        self.file = file
        self.out = av.open(str(file), "w", options=container_options)
        self.codec, self.options = codec, options
        self.video: Any = None

    def add(self, frame: av.VideoFrame, pts: int, fps: Fraction) -> None:
        if self.video is None:
            self.video = self.out.add_stream(self.codec, rate=fps)
            self.video.width, self.video.height = frame.width // 2 * 2, frame.height // 2 * 2
            self.video.pix_fmt, self.video.options = "yuv420p", self.options
        picture = frame.reformat(width=self.video.width, height=self.video.height, format="yuv420p")
        picture.pts, picture.time_base = pts, 1 / fps
        self.out.mux(self.video.encode(picture))

    def finish(self) -> Path:
        self.out.mux(self.video.encode())
        self.out.close()
        return self.file
