"""PyAV decoding: count every frame, keep only the frames that the snippet sampling needs.

Snippet convention: snippet t holds frames [16t, 16t + 16); a video of F frames has T = floor(F / 16)
snippets and its trailing F mod 16 frames are dropped (the convention of the published features, and
what the frame-level ground truth assumes: T * 16 frames). Only the sampled frames are converted to RGB.

Frame indices must be exact, so every frame is decoded, except in H.264 / HEVC streams whose packets carry
distinct timestamps: there a demux-only pass (no decoding, ~50x faster) gives each packet its frame index
(its rank in presentation order), and a frame that is neither sampled nor referenced by other frames
(a non-reference B-frame) is not decoded at all (FFmpeg's ``skip_frame=nonref``). The sampled frames are
the same pixels either way; x264 streams decode ~1.35x faster.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from cplvad.errors import ConfigError


class VideoError(Exception):
    """One video cannot be used (corrupt, not a video, too short, unreadable); recorded, not fatal."""


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    """Frames decoded from the first video stream."""
    fps: float | None
    snippets: int


def sample_offsets(sampling: str, frames_per_snippet: int) -> tuple[int, ...]:
    """Frame offsets inside a snippet that represent it.

    ``center``: the middle frame (offset 8 of 16). ``mean:K``: the centres of K equal parts of the snippet,
    e.g. ``mean:4`` -> (2, 6, 10, 14); ``mean:1`` equals ``center``. Their embeddings are averaged.
    """
    k = 1 if sampling == "center" else int(sampling.split(":", 1)[1])
    if k > frames_per_snippet:
        raise ConfigError(
            f"extract.sampling={sampling!r} asks for {k} frames per snippet but a snippet has only "
            f"{frames_per_snippet} (extract.frames_per_snippet); use mean:K with K <= {frames_per_snippet}"
        )
    return tuple(int((j + 0.5) * frames_per_snippet / k) for j in range(k))


SKIPPABLE_CODECS = frozenset({"h264", "hevc"})
"""Decoders whose non-reference frames FFmpeg can skip, with one frame per packet."""


def decode_snippets(
    path: str | Path,
    frames_per_snippet: int,
    offsets: tuple[int, ...],
    snippets_per_chunk: int,
    decoder_threads: int = 0,
    skip_unused: bool = True,
    source: VideoSourceOptions | None = None,
) -> Iterator[list[np.ndarray] | VideoInfo]:
    """Yield the sampled frames of complete snippets in chunks, then one final ``VideoInfo``.

    A chunk is a list of n * len(offsets) uint8 frames (H, W, 3), snippet-major. It is not stacked: a
    worker sends the frames one by one, and stacking each chunk into a fresh array cost 5-17 % of decoding.
    Raises ``VideoError`` with the reason when the file is not a decodable video or holds fewer than
    ``frames_per_snippet`` frames.
    ``decoder_threads``: FFmpeg decoder threads (0 = its automatic choice; 1 in worker processes, whose
    parallelism is the processes). The RGB conversion is always single-threaded: swscale's default of one
    thread per CPU made it ~20x slower on a 16-core machine (small frames, one conversion in 16 frames).
    ``skip_unused``: skip unsampled non-reference frames where the stream allows it (module docstring);
    if its frames turn out not to match the packets' timestamps, the video is decoded again in full.
    ``source``: how to open a live source (options, timeouts, notices); it is read once, so ``skip_unused`` is
    ignored.
    """
    decode = functools.partial(
        _decode,
        path,
        frames_per_snippet,
        offsets,
        snippets_per_chunk,
        decoder_threads,
        source=source or VideoSourceOptions(),
    )
    if source is not None:
        yield from decode(None)
        return
    started = False
    try:
        for item in decode(_presentation_order(path) if skip_unused else None):
            started = True
            yield item
    except _OrderMismatch as exc:
        if started:
            raise VideoError(f"{exc} (damaged stream)") from None
        yield from decode(None)


class _OrderMismatch(Exception):
    """The decoder's frames do not follow the packets' timestamps."""


def _decode(
    path: str | Path,
    frames_per_snippet: int,
    offsets: tuple[int, ...],
    snippets_per_chunk: int,
    decoder_threads: int,
    order: dict[int, int] | None,
    source: VideoSourceOptions,
) -> Iterator[list[np.ndarray] | VideoInfo]:
    """``decode_snippets`` with every frame decoded (``order`` None) or unsampled ones skipped."""
    keep = set(offsets)
    last = frames_per_snippet - 1
    with open_video(path, source.options, source.timeout) as (container, stream):
        stream.thread_count = decoder_threads
        fps = stream_fps(stream)
        source.opened(fps)
        if order is None:
            decoded: Iterator[av.VideoFrame | None] = container.decode(stream)
        else:
            usable = len(order) // frames_per_snippet * frames_per_snippet  # frames of complete snippets
            decoded = _sampled_frames(
                container, stream, order, lambda i: i < usable and i % frames_per_snippet in keep
            )
        size: dict[str, int] = {}
        seen: dict[str, int] = {}
        snippet: list[np.ndarray] = []
        chunk: list[np.ndarray] = []
        frames = 0
        try:
            for frame in decoded:
                offset = frames % frames_per_snippet
                frames += 1
                if offset in keep:
                    if frame is None:
                        raise _OrderMismatch(f"sampled frame {frames - 1} was not decoded")
                    if size and (frame.width, frame.height) != (seen["width"], seen["height"]):
                        source.notice(
                            f"the frame size changed from {seen['width']}x{seen['height']} to "
                            f"{frame.width}x{frame.height} at frame {frames - 1}; frames are rescaled to "
                            f"the first size, {size['width']}x{size['height']}"
                        )
                    seen = {"width": frame.width, "height": frame.height}
                    size = size or seen
                    # a size change mid-stream is rescaled to the first frame's size so chunks stack
                    snippet.append(frame.to_ndarray(format="rgb24", threads=1, **size))
                if offset == last:
                    chunk.extend(snippet)
                    snippet = []
                    if len(chunk) >= snippets_per_chunk * len(offsets):
                        yield chunk
                        chunk = []
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(f"decoding failed after {frames} frames ({_reason(exc)})") from None
    if frames == 0:
        raise VideoError("the video stream holds no frames")
    if frames < frames_per_snippet:
        raise VideoError(f"only {frames} frames; a snippet needs {frames_per_snippet}, so T would be 0")
    if chunk:
        yield chunk
    yield VideoInfo(frames=frames, fps=fps, snippets=frames // frames_per_snippet)


def _presentation_order(path: str | Path) -> dict[int, int] | None:
    """Frame index of every shown packet by its timestamp, from demuxing alone; None where that is not
    exact (another codec, a packet without or with a repeated timestamp, a packet count unlike the
    header's). Packets the container marks to discard (cut by an edit list) are decoded but not shown."""
    try:
        with open_video(path) as (container, stream):
            if stream.codec_context.name not in SKIPPABLE_CODECS:
                return None
            packets = [(p.pts, p.is_discard) for p in container.demux(stream) if p.size]
            header_frames = stream.frames
    except (VideoError, av.FFmpegError, OSError):
        return None  # the decoding pass reports what is wrong
    pts = [t for t, _ in packets]
    if None in pts or len(set(pts)) != len(pts) or (header_frames and header_frames != len(pts)):
        return None
    return {t: i for i, t in enumerate(sorted(t for t, discard in packets if not discard))}


def _sampled_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    order: dict[int, int],
    wanted: Callable[[int], bool],
) -> Iterator[av.VideoFrame | None]:
    """Every frame in presentation order; None for a frame not ``wanted`` that was not decoded.

    A packet whose frame is not wanted is decoded only if it is a reference frame, which later frames need.
    """
    codec = stream.codec_context
    following = 0  # index of the next frame to yield
    for packet in container.demux(stream):
        if packet.size:  # the last, empty packet only flushes the decoder
            index = order.get(packet.pts)
            codec.skip_frame = "DEFAULT" if index is not None and wanted(index) else "NONREF"
        for frame in codec.decode(packet):
            index = order.get(frame.pts) if frame.pts is not None else None
            # the first frame shown is a key frame, never skipped: if it is missing, the decoder dropped frames
            if index is None or index < following or (following == 0 and index > 0):
                raise _OrderMismatch(
                    f"a decoded frame's timestamp ({frame.pts}) does not follow the packets'"
                )
            yield from [None] * (index - following)
            yield frame
            following = index + 1
    yield from [None] * (len(order) - following)


def stream_fps(stream: av.video.stream.VideoStream) -> float | None:
    """Frames per second of a video stream as every output reports it: its average rate (a network stream
    often has none: then FFmpeg's guess from the stream's timing)."""
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def probe_fps(path: str | Path) -> float | None:
    """The fps that ``decode_snippets`` will report, read from the header alone (before any decoding)."""
    with open_video(path) as (_, stream):
        return stream_fps(stream)


@dataclass(frozen=True)
class VideoSourceOptions:
    """How to open a live source: FFmpeg options (``follow`` for a growing file, ``rtsp_transport``, ...),
    seconds to wait for the source to open and for each read (None: forever), where notices go (a frame
    size change) and who wants the frame rate when the source is open."""

    options: dict[str, str] | None = None
    timeout: float | None = None
    notice: Callable[[str], None] = lambda _: None
    opened: Callable[[float | None], None] = lambda _: None
    """Called with the stream's frame rate once it is open."""


@contextmanager
def open_video(
    path: str | Path, options: dict[str, str] | None = None, timeout: float | None = None
) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """The container and its first video stream; ``VideoError`` when the file is not a video.

    ``options``: FFmpeg format/protocol options; ``timeout``: seconds to wait for the source to open and for
    each read (an ``av.ExitError`` when it passes)."""
    try:
        container = av.open(str(path), options=options or {}, timeout=timeout)
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(f"not a readable video file ({_reason(exc)})") from None
    with container:
        if not container.streams.video:
            raise VideoError("the file holds no video stream (zero-frame or audio-only file)")
        yield container, container.streams.video[0]


def _reason(exc: BaseException) -> str:
    msg = str(exc).split("] ", 1)[-1]
    return f"{type(exc).__name__}: {msg}"
