"""A live source read by a background thread: a network stream (anything FFmpeg opens) or a growing file,
decoded snippet by snippet (the sampled frames of each snippet as soon as its 16 frames are in) into a
bounded queue shared with the scoring loop.

A network source that drops (it ends, errors, or sends nothing for ``stall_timeout`` seconds) is reopened
with back-off (``backoff``, doubling, at most ``backoff_max`` seconds); after ``reconnect_attempts``
consecutive attempts without a frame it is given up (0: never). A local file is opened with FFmpeg's
``follow`` option, so frames appended to it are read; it ends when nothing is appended for
``stall_timeout`` seconds. A full queue blocks the thread (for a network stream the sender is then slowed
down or FFmpeg's buffer overflows); memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from cplvad.extract.pool import DecodeJob, sized_frames
from cplvad.extract.video import VideoError, VideoInfo, VideoSourceOptions, decode_snippets
from cplvad.predict.inputs import Input


@dataclass(frozen=True)
class LiveSettings:
    stall_timeout: float = 10.0
    reconnect_attempts: int = 5
    backoff: float = 1.0
    backoff_max: float = 30.0
    options: tuple[tuple[str, str], ...] = ()
    """Extra FFmpeg options of network sources (e.g. ``rtsp_transport=tcp``)."""


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


class LiveSource:
    def __init__(
        self, index: int, inp: Input, job: DecodeJob, settings: LiveSettings, out: queue.Queue[Any]
    ) -> None:
        self.index = index
        self.input = inp
        self.job = job
        self.settings = settings
        self.out = out
        self.stopping = threading.Event()
        self.opened = False
        self._fps: float | None = None
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
        options = dict(self.settings.options)
        if self.input.is_local:
            options.setdefault("follow", "1")  # a growing file: wait for appended data at its end
        return VideoSourceOptions(
            options,
            self.settings.stall_timeout,
            notice=lambda text: self._put(Notice(self.index, text)),
            opened=lambda fps: setattr(self, "_fps", fps),
        )

    def _segment(self, attempt: int) -> tuple[str, int]:
        """Read until the source ends or fails; returns why it ended and how many snippets came."""
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
                    self._put(Connected(self.index, self._fps, attempt))
                received += 1
                if not self._put(Snippet(self.index, sized_frames(item, self.job), time.time())):
                    return "stopped", received
            return "the stream ended", received
        except VideoError as exc:
            return self._reason(str(exc), received), received

    def _reason(self, text: str, received: int) -> str:
        if "ExitError" in text:  # PyAV's timeout of an open or a read
            return (
                f"no data for {self.settings.stall_timeout:g} s"
                if received or self.input.is_local
                else f"did not open within {self.settings.stall_timeout:g} s"
            )
        return text.replace("not a readable video file", "cannot open it", 1)

    def _run(self) -> None:
        failures, attempt = 0, 0
        reason = "stopped"
        while not self.stopping.is_set():
            attempt += 1
            reason, received = self._segment(attempt)
            if self.stopping.is_set() or self.input.is_local:
                break
            failures = 0 if received else failures + 1
            limit = self.settings.reconnect_attempts
            if limit and failures >= limit:
                reason = f"{reason}; gave up after {failures} failed attempt(s) to open it"
                break
            delay = min(self.settings.backoff * 2 ** max(failures - 1, 0), self.settings.backoff_max)
            self._put(Dropped(self.index, reason, delay))
            if self.stopping.wait(delay):
                reason = "stopped"
                break
        for _ in range(100):  # the scoring loop drains the queue until every source has finished
            try:
                self.out.put(Finished(self.index, reason, self.opened), timeout=0.2)
                return
            except queue.Full:
                continue
