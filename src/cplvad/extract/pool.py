"""Decode worker processes feeding the one encoder in the main process.

Each worker owns a duplex pipe: the main process sends it video tasks (two at a time, so it never waits
for the next one) and it sends back events: ``Started``, ``Chunk`` (uint8 frames, resized unless small:
see ``decode_job``), then ``Done`` or ``Failed``. A chunk's frame bytes travel on a second, raw socket,
frame by frame as decoded, and are received straight into one (pinned, on CUDA) tensor: one copy, no
pickling, the GIL released while they arrive, and no shared-memory segment to size (containers often
have a tiny /dev/shm). A receiver thread drains the workers into a bounded queue, so they keep decoding
while the main thread waits for the GPU; the bound is the backpressure. A worker that dies (a decoder
crash) fails only the video it was on and is replaced; a worker whose main process is gone (killed) ends
quietly at its next message.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import socket
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np
import torch

from cplvad.extract.transforms import CropPlan, frames_tensor, resize_rgb
from cplvad.extract.video import VideoError, VideoInfo, decode_snippets
from cplvad.storage.location import local_copy

TASKS_PER_WORKER = 2
CHUNK_BYTES = 8 << 20
"""Upper bound of one frame chunk from a worker (bounds the memory in flight)."""
DEVICE_RESIZE_MAX_SCALE = 2
"""With ``resize_on_device``, frames of up to this many times the resized frame's pixels are not resized by
the workers (a UCF-Crime 320x240 frame is 1.5 times a 224x224 one); larger ones are, to keep transfers small."""


@dataclass(frozen=True)
class DecodeJob:
    """Everything a worker needs, sent once when it starts."""

    frames_per_snippet: int
    offsets: tuple[int, ...]
    plan: CropPlan
    snippets_per_chunk: int
    device_resize_pixels: int = 0
    """Frames of at most this many pixels are sent as decoded, for the encoder to resize (0: none are)."""


def decode_job(
    frames_per_snippet: int,
    offsets: tuple[int, ...],
    plan: CropPlan,
    frames_per_batch: int,
    resize_on_device: bool = False,
) -> DecodeJob:
    """Chunks of whole snippets: about one encoder batch, at most ``CHUNK_BYTES`` of frames.

    ``resize_on_device`` (for a GPU encoder): small frames travel unresized and the GPU resizes them, which
    takes it microseconds; in a worker the bicubic resize of a sampled frame costs about a sixth of
    decoding its 16 frames (320x240 H.264, one core).
    """
    frame_h, frame_w = plan.frame_size
    raw_pixels = DEVICE_RESIZE_MAX_SCALE * frame_h * frame_w if resize_on_device else 0
    per_snippet_bytes = len(offsets) * 3 * max(frame_h * frame_w, raw_pixels)
    per_chunk = max(1, min(frames_per_batch // len(offsets), CHUNK_BYTES // per_snippet_bytes))
    return DecodeJob(frames_per_snippet, offsets, plan, per_chunk, raw_pixels)


@dataclass(frozen=True)
class Started:
    index: int


@dataclass(frozen=True)
class Chunk:
    index: int
    frames: torch.Tensor
    """(n_snippets * len(offsets), 3, h, w) uint8 in channels-last memory, snippet-major; (h, w) is the
    plan's ``frame_size``, or the video's own for frames left to the encoder to resize."""


@dataclass(frozen=True)
class Done:
    index: int
    info: VideoInfo


@dataclass(frozen=True)
class Failed:
    index: int
    reason: str


Event = Started | Chunk | Done | Failed


@dataclass(frozen=True)
class _Frames:
    """A chunk as decoded: its frames (h, w, 3) uint8, not yet stacked (a worker sends them one by one)."""

    index: int
    frames: list[np.ndarray]


def sized_frames(frames: list[np.ndarray], job: DecodeJob) -> list[np.ndarray]:
    """Decoded frames as a worker sends them: resized to the plan's frame size, unless left to the encoder."""
    h, w, _ = frames[0].shape
    return [resize_rgb(f, job.plan) for f in frames] if h * w > job.device_resize_pixels else frames


def decode_video(
    index: int, uri: str, job: DecodeJob, decoder_threads: int = 0
) -> Iterator[Started | _Frames | Done | Failed]:
    """The events of one video; any failure becomes a ``Failed`` event with its reason."""
    yield Started(index)
    try:
        with local_copy(uri) as path:
            chunks = decode_snippets(
                path, job.frames_per_snippet, job.offsets, job.snippets_per_chunk, decoder_threads
            )
            for item in chunks:
                if isinstance(item, VideoInfo):
                    yield Done(index, item)
                else:
                    yield _Frames(index, sized_frames(item, job))
    except VideoError as exc:
        yield Failed(index, str(exc))
    except OSError as exc:
        yield Failed(index, f"cannot read the file: {exc}")
    except Exception as exc:  # one bad video must not stop the others; the reason is recorded
        yield Failed(index, f"unexpected {type(exc).__name__} while decoding: {exc}")


def decode_events(
    tasks: list[tuple[int, str]], job: DecodeJob, workers: int, pin_memory: bool = False
) -> Iterator[Event]:
    """Events of all ``tasks`` (index, uri): in-process when ``workers`` is 0, else from worker processes.

    Events of one video arrive in order; videos interleave. Closing the generator stops the workers.
    """
    if workers == 0:
        for index, uri in tasks:
            for event in decode_video(index, uri, job):
                if isinstance(event, _Frames):
                    event = Chunk(event.index, frames_tensor(np.stack(event.frames)))
                yield event
        return
    pool = _Pool(job, workers, pin_memory)
    try:
        yield from pool.run(tasks)
    finally:
        pool.close()


def _worker_main(conn: Connection, data: socket.socket, job: DecodeJob, env: dict[str, str]) -> None:
    # a forked worker inherits the fork server's environment, fixed when the server started: take the
    # caller's (S3 endpoint and credentials may have been set since)
    os.environ.clear()
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run cleanups (temporary S3 downloads)
    torch.set_num_threads(1)  # parallelism comes from the processes
    with contextlib.suppress(EOFError, ConnectionError):  # the main process is gone (killed): just end
        while (task := conn.recv()) is not None:
            for event in decode_video(*task, job, decoder_threads=1):
                if isinstance(event, _Frames):
                    conn.send(("chunk", event.index, (len(event.frames), *event.frames[0].shape)))
                    for frame in event.frames:
                        data.sendall(np.ascontiguousarray(frame))  # no copy: decoded frames are contiguous
                else:
                    conn.send(event)


_END = object()


class _Pool:
    def __init__(self, job: DecodeJob, workers: int, pin_memory: bool) -> None:
        self.job = job
        self.n_workers = workers
        self.pin_memory = pin_memory
        # Workers fork from a clean server process that has imported this module once: no CUDA state is
        # inherited (never fork the caller), and a worker starts in milliseconds instead of importing torch
        # again (seconds each; 15 at once took ~8 s on a 16-core GPU node). The server lives on for later pools.
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload([__name__])
        self.procs: dict[int, Any] = {}
        self.conns: dict[int, Connection] = {}
        self.data: dict[int, socket.socket] = {}
        self.events: queue.Queue[Any] = queue.Queue(maxsize=4 * workers)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _spawn(self, wid: int) -> None:
        parent, child = self.ctx.Pipe(duplex=True)
        data_parent, data_child = socket.socketpair()
        proc = self.ctx.Process(
            target=_worker_main,
            args=(child, data_child, self.job, dict(os.environ)),
            daemon=True,
            name=f"cplvad-decode-{wid}",
        )
        proc.start()
        child.close()
        data_child.close()
        self.procs[wid], self.conns[wid], self.data[wid] = proc, parent, data_parent

    def run(self, tasks: list[tuple[int, str]]) -> Iterator[Event]:
        for wid in range(min(self.n_workers, len(tasks))):
            self._spawn(wid)
        self.thread = threading.Thread(target=self._receive, args=(deque(tasks),), daemon=True)
        self.thread.start()
        while (item := self.events.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(queue.Full):
                self.events.put(item, timeout=0.2)
                return

    def _receive(self, pending: deque[tuple[int, str]]) -> None:
        try:
            outstanding: dict[int, deque[tuple[int, str]]] = {wid: deque() for wid in self.procs}

            def assign(wid: int) -> None:
                while pending and len(outstanding[wid]) < TASKS_PER_WORKER:
                    task = pending.popleft()
                    outstanding[wid].append(task)
                    self.conns[wid].send(task)

            for wid in self.procs:
                assign(wid)
            while not self.stop.is_set() and any(outstanding.values()):
                by_conn = {self.conns[w]: w for w, q in outstanding.items() if q}
                for conn in wait(list(by_conn), timeout=0.5):
                    wid = by_conn[conn]
                    try:
                        msg = conn.recv()
                        if isinstance(msg, tuple):  # a chunk header; the frame bytes follow
                            _, index, shape = msg
                            frames = torch.empty(shape, dtype=torch.uint8, pin_memory=self.pin_memory)
                            _recv_exactly(self.data[wid], memoryview(frames.numpy().reshape(-1)))
                            msg = Chunk(index, frames.permute(0, 3, 1, 2))
                    except (EOFError, OSError):
                        self._replace(wid, outstanding[wid], pending)
                        assign(wid)
                        continue
                    self._put(msg)
                    if isinstance(msg, Done | Failed):
                        outstanding[wid].popleft()
                        assign(wid)
            self._put(_END)
        except BaseException as exc:  # hand any receiver error to the consuming thread
            self._put(exc)

    def _replace(self, wid: int, lost: deque[tuple[int, str]], pending: deque[tuple[int, str]]) -> None:
        """A worker died: fail the video it was on, requeue its other task, start a new worker."""
        if self.stop.is_set():
            return
        proc = self.procs[wid]
        proc.join(timeout=5)
        index, uri = lost.popleft()
        self._put(Failed(index, f"the decoder process died (exit code {proc.exitcode}) while reading {uri}"))
        pending.extendleft(reversed(lost))
        lost.clear()
        self.conns[wid].close()
        self.data[wid].close()
        self._spawn(wid)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
        for wid, conn in self.conns.items():
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
            proc = self.procs[wid]
            proc.join(timeout=0.5 if proc.is_alive() else 0)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            conn.close()
            self.data[wid].close()


def _recv_exactly(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if not n:
            raise EOFError("the decoder process closed its data socket")
        got += n
