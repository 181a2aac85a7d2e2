"""``cplvad predict --live``: score network streams and growing files as they arrive, with bounded latency.

Every source is read by its own thread (``live_source``); the scoring loop here encodes the snippets that
have arrived (one CLIP batch per source), scores each one with ``SlidingScorer`` as soon as ``latency``
snippets of future context are in, and follows events with ``EventTracker``. Each event is reported twice
through ``on_line`` (the CLI prints JSON lines on stdout, ``--webhook`` POSTs them):

- ``{"type": "event_start", "input", "event" (its number in the session), "start_snippet", "start_frame",
  "start_s", "start_time" (UTC, when its first snippet arrived), "class", "score" (so far),
  "received_snippets"}`` when its first snippet is scored (``predict.min_event_snippets`` long);
- ``{"type": "event_end", "input", "event", <the event fields of the JSON report>, "start_time",
  "end_time" (when its last snippet arrived), "received_snippets"}`` when the first snippet below the
  threshold is scored, or the segment ends.

``received_snippets`` (snippets of the session received when the line was written) shows the delay in
snippets: ``end_snippet + latency + 1`` for a source read in real time; more when the scorer works through a
backlog (snippets are encoded and scored in batches of up to one CLIP batch).

Snippet, frame and second counts run over the whole session (``start_s`` = session frames / fps): a drop
closes the open event and starts a new segment (the context window starts over), which continues the
count. Reports: ``OUT/<name>.<session start>.json`` (schema ``cplvad-prediction/1`` with a ``live``
record), rewritten every ``flush_seconds`` and at the end; a session longer than ``part_snippets`` snippets
continues in ``....part0001.json``, ... so memory stays bounded (the part's scores, the window, the queues).
Every scored snippet also counts in its source's daily score histogram (``cplvad.monitor.histograms``).

SIGINT / SIGTERM stop the session: the sources are closed, the snippets already in are scored, open events
are closed, the last part is written and every input gets its summary. An input fails only when its source
never delivered a frame (it never opened, or timed out); a source given up after it delivered frames has
simply ended.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from cplvad.eval.events import Event, EventTracker
from cplvad.extract.transforms import frames_tensor
from cplvad.predict.inputs import Input
from cplvad.predict.live_source import (
    Connected,
    Dropped,
    Finished,
    LiveSettings,
    LiveSource,
    Notice,
    Snippet,
    SourceItem,
)
from cplvad.predict.run import InputResult, PredictRunner
from cplvad.predict.sliding import SlidingScorer, check_latency
from cplvad.predict.webhook import Webhook

QUEUE_SNIPPETS = 256
"""Snippets waiting between the source threads and the scoring loop, per source (bounds their memory)."""
STOP_GRACE_S = 1.5
"""After a stop request, how long to wait for the sources to hand over what they have read."""


@dataclass(frozen=True)
class LiveOptions:
    latency: int
    settings: LiveSettings = LiveSettings()
    webhook: str | None = None
    webhook_timeout: float = 5.0
    webhook_retries: int = 3
    part_snippets: int = 5625
    flush_seconds: float = 60.0


def _drain(out: queue.Queue[SourceItem]) -> list[SourceItem]:
    """What the sources have put (waiting at most 0.2 s for the first item)."""
    try:
        items = [out.get(timeout=0.2)]
    except queue.Empty:
        return []
    while len(items) < QUEUE_SNIPPETS:
        try:
            items.append(out.get_nowait())
        except queue.Empty:
            break
    return items


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Session:
    """One input's state: scorer, tracker, the current report part, the arrival times of recent snippets."""

    def __init__(self, inp: Input, runner: PredictRunner, latency: int, stamp: str) -> None:
        p = runner.predictor
        self.result = InputResult(inp)
        self.name = f"{inp.name}.{stamp}"
        self.scorer = SlidingScorer(p.model, p.device, latency, runner.options.batch_size)
        self.tracker = EventTracker(
            runner.threshold.value, runner.options.min_event_snippets, p.classes, runner.frames_per_snippet
        )
        self.times: deque[tuple[int, float]] = deque(maxlen=latency + 4 * QUEUE_SNIPPETS)
        """(session snippet, arrival time) of recent snippets."""
        self.received = 0
        self.announced: tuple[int, float] | None = None
        """(start snippet, start time) of the open event whose start was reported."""
        self.events = 0
        self.connections = 0
        self.started_at = time.time()
        self.part = 0
        self.part_first = 0
        self.part_length = 0
        self.part_binary: list[np.ndarray] = []
        self.part_classes: list[np.ndarray] = []
        self.part_events: list[Event] = []
        self.ended: str | None = None

    def time_of(self, snippet: int) -> float | None:
        for index, t in reversed(self.times):
            if index == snippet:
                return t
            if index < snippet:
                break
        return None


class LiveRunner:
    def __init__(self, runner: PredictRunner, options: LiveOptions, log: Callable[[str], None]) -> None:
        self.runner = runner
        self.options = options
        self.log = log
        check_latency(options.latency, runner.predictor.model.cfg.max_len)
        self._stop = threading.Event()
        self._on_line: Callable[[dict[str, Any]], None] | None = None
        self._webhook: Webhook | None = None

    def stop(self) -> None:
        """Ask the session to stop (what SIGINT / SIGTERM do)."""
        self._stop.set()

    def run(
        self,
        inputs: Sequence[Input],
        on_line: Callable[[dict[str, Any]], None] | None = None,
        on_result: Callable[[InputResult], None] | None = None,
    ) -> list[InputResult]:
        encoder = self.runner.encoder
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        sessions = [_Session(inp, self.runner, self.options.latency, stamp) for inp in inputs]
        out: queue.Queue[SourceItem] = queue.Queue(maxsize=QUEUE_SNIPPETS * len(inputs))
        sources = {
            i: LiveSource(i, inp, encoder.job, self.options.settings, out)
            for i, inp in enumerate(inputs)
            if inp.kind != "features"
        }
        for i, session in enumerate(sessions):
            if i not in sources:
                session.ended = "not a live source"
                session.result.error = (
                    f"{session.result.input.display}: feature files are not live sources; "
                    "score them without --live"
                )
        self._on_line = on_line
        self._webhook = webhook = (
            Webhook(
                self.options.webhook,
                self.log,
                timeout=self.options.webhook_timeout,
                retries=self.options.webhook_retries,
            )
            if self.options.webhook
            else None
        )
        for source in sources.values():
            source.start()
        with self._signals():
            self._loop(sessions, sources, out)
        for session in sessions:
            if session.ended is None:  # a source that did not hand over its end within the grace period
                self._finish(session, "stopped")
        self.runner.histograms.flush()
        if webhook:
            stats = webhook.close()
            self.log(
                f"webhook {webhook.display}: {stats.delivered} delivered, {stats.failed} failed, "
                f"{stats.dropped} dropped"
            )
        for session in sessions:
            if on_result:
                on_result(session.result)
        return [s.result for s in sessions]

    # ----------------------------------------------------------------------------------------- the loop

    def _loop(
        self, sessions: list[_Session], sources: dict[int, LiveSource], out: queue.Queue[SourceItem]
    ) -> None:
        active = set(sources)
        deadline: float | None = None
        last_flush = time.monotonic()
        while active and (deadline is None or time.monotonic() < deadline):
            if self._stop.is_set() and deadline is None:
                self.log("stopping: scoring what has arrived, then writing the reports")
                for source in sources.values():
                    source.stop()
                deadline = time.monotonic() + STOP_GRACE_S
            active -= self._handle(sessions, _drain(out))
            if time.monotonic() - last_flush >= self.options.flush_seconds:
                for session in sessions:
                    if session.ended is None:
                        self._write_part(session, final=False)
                last_flush = time.monotonic()

    def _handle(self, sessions: list[_Session], items: list[SourceItem]) -> set[int]:
        """Score the snippets (batched per source), handle the rest in order; returns the sources that ended."""
        pending: dict[int, list[Snippet]] = {}
        finished = set()
        for item in items:
            if isinstance(item, Snippet):
                pending.setdefault(item.source, []).append(item)
                continue
            self._score(sessions, pending)
            pending = {}
            self._control(sessions[item.source], item)
            if isinstance(item, Finished):
                finished.add(item.source)
        self._score(sessions, pending)
        return finished

    def _control(self, session: _Session, item: SourceItem) -> None:
        name = session.result.input.display
        if isinstance(item, Connected):
            session.connections += 1
            if session.tracker.fps is None:
                session.tracker.fps = session.result.fps = item.fps
            fps = f" ({item.fps:g} fps)" if item.fps else ""
            self.log(
                f"{name}: connected{fps}" + (f" after {item.attempt} attempt(s)" if item.attempt > 1 else "")
            )
        elif isinstance(item, Notice):
            self.log(f"{name}: {item.text}")
        elif isinstance(item, Dropped):
            self._end_segment(session)
            self.log(f"{name}: dropped ({item.reason}); reconnecting in {item.retry_in:g} s")
        elif isinstance(item, Finished):
            if not item.opened:
                session.result.error = f"{name}: {item.reason}"
            self._finish(session, item.reason)

    def _score(self, sessions: list[_Session], pending: dict[int, list[Snippet]]) -> None:
        encoder = self.runner.encoder
        for index, snippets in pending.items():
            session = sessions[index]
            if session.ended is not None:
                continue
            step = max(1, encoder.encoder.frames_per_batch // len(encoder.offsets))
            for k in range(0, len(snippets), step):
                batch = snippets[k : k + step]
                feats = encoder.encode_snippets(frames_tensor(np.stack([f for s in batch for f in s.frames])))
                for s in batch:
                    session.times.append((session.received, s.arrived))
                    session.received += 1
                self._track(session, *session.scorer.add(feats))

    # ---------------------------------------------------------------------------------------- events

    def _track(self, session: _Session, binary: np.ndarray, classes: np.ndarray) -> None:
        """Scored snippets: follow the events, fill the report part (cut at exactly ``part_snippets``)."""
        self.runner.count_scores(session.result.input, session.name, binary)
        while len(binary):
            take = min(len(binary), self.options.part_snippets - session.part_length)
            session.part_binary.append(binary[:take])
            session.part_classes.append(classes[:take])
            session.part_length += take
            for event in session.tracker.update(binary[:take], classes[:take]):
                self._ended(session, event)
            self._maybe_started(session)
            if session.part_length == self.options.part_snippets:
                self._write_part(session, final=True)
                self._new_part(session)
            binary, classes = binary[take:], classes[take:]

    def _emit(self, line: dict[str, Any]) -> None:
        if self._on_line:
            self._on_line(line)
        if self._webhook:
            self._webhook.post(line)

    def _maybe_started(self, session: _Session) -> None:
        current = session.tracker.current()
        if current is not None and (
            session.announced is None or session.announced[0] != current.start_snippet
        ):
            self._started(session, current)

    def _started(self, session: _Session, event: Event) -> None:
        start_time = session.time_of(event.start_snippet) or time.time()
        session.announced = (event.start_snippet, start_time)
        session.events += 1
        self._emit(
            {
                "type": "event_start",
                "input": session.result.input.display,
                "event": session.events,
                "start_snippet": event.start_snippet,
                "start_frame": event.start_frame,
                "start_s": event.start_s,
                "start_time": _utc(start_time),
                "class": event.label,
                "score": event.score,
                "received_snippets": session.received,
            }
        )

    def _ended(self, session: _Session, event: Event) -> None:
        if session.announced is None or session.announced[0] != event.start_snippet:
            self._started(session, event)  # it started and ended within one scored batch
        assert session.announced is not None
        end_time = session.time_of(event.end_snippet - 1) or time.time()
        self._emit(
            {
                "type": "event_end",
                "input": session.result.input.display,
                "event": session.events,
                **event.to_json(),
                "start_time": _utc(session.announced[1]),
                "end_time": _utc(end_time),
                "received_snippets": session.received,
            }
        )
        session.announced = None
        session.part_events.append(event)

    def _end_segment(self, session: _Session) -> None:
        """The segment ended (a drop, the end, a stop): score what waits, close the open event."""
        self._track(session, *session.scorer.finish())
        for event in session.tracker.finish():
            self._ended(session, event)

    def _finish(self, session: _Session, reason: str) -> None:
        self._end_segment(session)
        session.ended = reason
        self._write_part(session, final=True)
        r = session.result
        r.snippets, r.frames = session.received, session.received * self.runner.frames_per_snippet
        r.live = {
            "events": session.events,
            "reconnects": max(session.connections - 1, 0),
            "parts": session.part + 1,
            "ended": reason,
            "started_at": _utc(session.started_at),
        }
        self.log(
            f"{r.input.display}: ended ({reason}); {session.received} snippets, {session.events} event(s)"
        )

    # ----------------------------------------------------------------------------------------- reports

    def _write_part(self, session: _Session, final: bool) -> None:
        r = session.result
        m = len(self.runner.predictor.classes)
        binary = np.concatenate(session.part_binary) if session.part_binary else np.zeros(0, np.float32)
        classes = (
            np.concatenate(session.part_classes) if session.part_classes else np.zeros((0, m), np.float32)
        )
        if not len(binary):
            return  # nothing scored in this part yet
        fps_frames = self.runner.frames_per_snippet
        name = session.name if session.part == 0 else f"{session.name}.part{session.part:04d}"
        first_time = session.time_of(session.part_first)
        live = {
            "part": session.part,
            "first_snippet": session.part_first,
            "first_frame": session.part_first * fps_frames,
            "started_at": _utc(session.started_at),
            "part_started_at": _utc(first_time) if first_time else None,
            "updated_at": _utc(time.time()),
            "reconnects": max(session.connections - 1, 0),
            "final": final,
        }
        r.frames = len(binary) * fps_frames
        self.runner.write_document(r, binary, classes, list(session.part_events), name=name, live=live)

    def _new_part(self, session: _Session) -> None:
        session.part += 1
        session.part_first += session.part_length
        session.part_length = 0
        session.part_binary, session.part_classes, session.part_events = [], [], []

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT / SIGTERM ask for a clean stop (a second one interrupts at once)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, _frame: Any) -> None:
            if self._stop.is_set():
                raise KeyboardInterrupt
            self.log(f"{signal.Signals(signum).name}: stopping")
            self._stop.set()

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
