"""A live source read by a background thread: a network stream (anything FFmpeg opens) or a growing file,
decoded snippet by snippet (the sampled frames of each snippet as soon as its 16 frames are in) into a
bounded queue shared with the scoring loop.

A network source that drops (it ends, errors, or sends nothing for ``predict.stall_timeout`` seconds) is
reopened with back-off (tenacity: ``predict.reconnect_backoff``, doubling, at most
``predict.reconnect_backoff_max`` seconds, starting over once a frame came); after
``predict.reconnect_attempts`` consecutive attempts without a frame it is given up (0: never). A local file is
opened with FFmpeg's ``follow`` option, so frames appended to it are read; it ends when nothing is appended for
``stall_timeout`` seconds. A full queue blocks the thread (for a network stream the sender is then slowed down
or FFmpeg's buffer overflows); memory stays bounded. ``LiveSources`` are the sources of one session and
their queue.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tenacity import (
    Retrying,
    retry_if_exception_type,
    retry_never,
    stop_after_attempt,
    stop_never,
    stop_when_event_set,
    wait_exponential,
)

from cplvad.config import PredictConfig
from cplvad.extract.pool import DecodeJob, sized_frames
from cplvad.extract.video import VideoError, VideoInfo, VideoSourceOptions, decode_snippets
from cplvad.predict.inputs import Input

QUEUE_SNIPPETS = 256
"""Snippets waiting between the source threads and the scoring loop, per source (bounds their memory)."""


@dataclass(frozen=True)
class Snippet:
    source: int
    frames: list[np.ndarray]
    """The snippet's sampled frames, sized as the decode workers send them."""
    arrived: float
    """``time.time()`` when its last frame was decoded."""


@dataclass(frozen=True)
class Connected:
    source: int
    fps: float | None
    attempt: int


@dataclass(frozen=True)
class Dropped:
    """The segment ended; the source is reopened in ``retry_in`` seconds."""

    source: int
    reason: str
    retry_in: float


@dataclass(frozen=True)
class Finished:
    """No more data: a file ended, a network source was given up, or the source was stopped."""

    source: int
    reason: str
    opened: bool
    """Whether any frame ever arrived."""


@dataclass(frozen=True)
class Notice:
    source: int
    text: str


SourceItem = Snippet | Connected | Dropped | Finished | Notice


class _Unopened(Exception):
    """A segment ended before its first frame; the message says why."""


class _Stopped(Exception):
    """``stop()`` came during a back-off."""


class LiveSource:
    """Input ``index`` of the session, read by its own thread into ``out``; ``ffmpeg_options``: extra FFmpeg
    options of network sources (e.g. ``rtsp_transport=tcp``)."""

    def __init__(
        self,
        index: int,
        inp: Input,
        job: DecodeJob,
        settings: PredictConfig,
        out: queue.Queue[Any],
        ffmpeg_options: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.index = index
        self.input = inp
        self.job = job
        self.settings = settings
        self.out = out
        self.ffmpeg_options = ffmpeg_options
        self.stopping = threading.Event()
        self.opened = False
        self._fps: float | None = None
        self._attempts = 0
        self._thread = threading.Thread(target=self._run, name=f"cplvad-live-{index}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop at the next snippet (or within ``stall_timeout`` seconds when the source sends nothing)."""
        self.stopping.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _put(self, item: SourceItem) -> bool:
        while not self.stopping.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _open_options(self) -> VideoSourceOptions:
        options = dict(self.ffmpeg_options)
        if self.input.is_local:
            options.setdefault("follow", "1")  # a growing file: wait for appended data at its end
        return VideoSourceOptions(
            options,
            self.settings.stall_timeout,
            notice=lambda text: self._put(Notice(self.index, text)),
            opened=lambda fps: setattr(self, "_fps", fps),
        )

    def _segment(self) -> str:
        """Read until the source ends or fails; returns why it ended, or raises ``_Unopened`` if no frame came."""
        self._attempts += 1
        received = 0
        try:
            snippets = decode_snippets(
                self.input.uri,
                self.job.frames_per_snippet,
                self.job.offsets,
                1,
                decoder_threads=1,
                source=self._open_options(),
            )
            for item in snippets:
                if isinstance(item, VideoInfo):
                    break
                if not received:
                    self.opened = True
                    self._put(Connected(self.index, self._fps, self._attempts))
                received += 1
                if not self._put(Snippet(self.index, sized_frames(item, self.job), time.time())):
                    return "stopped"
            reason = "the stream ended"
        except VideoError as exc:
            reason = self._reason(str(exc), received)
        if not received:
            raise _Unopened(reason)
        return reason

    def _reason(self, text: str, received: int) -> str:
        if "ExitError" in text:  # PyAV's timeout of an open or a read
            return (
                f"no data for {self.settings.stall_timeout:g} s"
                if received or self.input.is_local
                else f"did not open within {self.settings.stall_timeout:g} s"
            )
        return text.replace("not a readable video file", "cannot open it", 1)

    def _run(self) -> None:
        reason = "stopped"
        try:
            while not self.stopping.is_set():
                reason = self._reconnecting()(self._segment)
                if self.stopping.is_set() or self.input.is_local:
                    break
                self._put(Dropped(self.index, reason, self.settings.reconnect_backoff))
                self._pause(self.settings.reconnect_backoff)
        except _Unopened as exc:
            reason = str(exc)
            if not (self.stopping.is_set() or self.input.is_local):
                reason += f"; gave up after {self.settings.reconnect_attempts} failed attempt(s) to open it"
        except _Stopped:
            reason = "stopped"
        with contextlib.suppress(queue.Full):  # the scoring loop drains the queue until every source finished
            self.out.put(Finished(self.index, reason, self.opened), timeout=20)

    def _reconnecting(self) -> Retrying:
        """Segments until one delivers a frame, each failure announced (``Dropped``) with its back-off."""
        s = self.settings
        return Retrying(
            retry=retry_never if self.input.is_local else retry_if_exception_type(_Unopened),
            stop=(stop_after_attempt(s.reconnect_attempts) if s.reconnect_attempts else stop_never)
            | stop_when_event_set(self.stopping),
            wait=wait_exponential(multiplier=s.reconnect_backoff, max=s.reconnect_backoff_max),
            sleep=self._pause,
            before_sleep=lambda rs: self._put(
                Dropped(self.index, str(rs.outcome.exception()), rs.upcoming_sleep)
            ),
            reraise=True,
        )

    def _pause(self, seconds: float) -> None:
        if self.stopping.wait(seconds):
            raise _Stopped


class LiveSources:
    """The live inputs of a session (``{index: input}``), each read by its own ``LiveSource`` thread into one
    queue of ``QUEUE_SNIPPETS`` items per input of the session (``size``), which the scoring loop drains."""

    def __init__(
        self,
        inputs: dict[int, Input],
        job: DecodeJob,
        settings: PredictConfig,
        ffmpeg_options: tuple[tuple[str, str], ...],
        size: int,
    ) -> None:
        self.queue: queue.Queue[SourceItem] = queue.Queue(maxsize=QUEUE_SNIPPETS * size)
        self.sources = {
            i: LiveSource(i, inp, job, settings, self.queue, ffmpeg_options) for i, inp in inputs.items()
        }

    def start(self) -> None:
        for source in self.sources.values():
            source.start()

    def stop(self) -> None:
        for source in self.sources.values():
            source.stop()

    def drain(self) -> list[SourceItem]:
        """What the sources have put (waiting at most 0.2 s for the first item)."""
        try:
            items = [self.queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(items) < QUEUE_SNIPPETS:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return items
