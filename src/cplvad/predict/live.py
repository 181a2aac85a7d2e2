"""``cplvad predict --live``: score network streams and growing files as they arrive, with bounded latency.

Three parts, one module each: the sources, every one read by its own thread into a shared queue
(``live_source``); the scoring of each source (``live_scoring``): the snippets that have arrived encoded (one
CLIP batch per source), each scored with ``SlidingScorer`` as soon as ``latency`` snippets of future context
are in, events followed with ``EventTracker``; and the reporting (``live_report``): event lines, webhook,
report parts, score histograms. The session here runs the loop between them, stops on request and closes
every input. Each event is reported twice through ``on_line`` (the CLI prints JSON lines on stdout,
``--webhook`` POSTs them):

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
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from cplvad.config import PredictConfig
from cplvad.extract.inmemory import FeatureEncoder
from cplvad.predict.inputs import Input
from cplvad.predict.live_report import EventLines, ReportParts
from cplvad.predict.live_scoring import LiveScoring
from cplvad.predict.live_source import (
    Connected,
    Dropped,
    Finished,
    LiveSources,
    Notice,
    Snippet,
    SourceItem,
)
from cplvad.predict.report import utc
from cplvad.predict.run import InputResult, PredictHooks, PredictRunner
from cplvad.predict.sliding import check_latency

STOP_GRACE_S = 1.5
"""After a stop request, how long to wait for the sources to hand over what they have read."""


class _Session:
    """One input of the session: its result, its source's connections, its scoring and its report."""

    def __init__(
        self, inp: Input, runner: PredictRunner, settings: PredictConfig, stamp: str, lines: EventLines
    ) -> None:
        self.result = InputResult(inp)
        self.scoring = LiveScoring(runner, settings.latency, inp.display, lines.emit)
        self.report = ReportParts(runner, self.result, f"{inp.name}.{stamp}", settings.live_part_snippets)
        self.frames_per_snippet = runner.scoring.frames_per_snippet
        self.connections = 0
        self.ended: str | None = None

    def score(self, encoder: FeatureEncoder, snippets: list[Snippet]) -> None:
        if self.ended is None:
            for binary, classes in self.scoring.score(encoder, snippets):
                self.track(binary, classes)

    def track(self, binary: np.ndarray, classes: np.ndarray) -> None:
        """Scored snippets: follow the events, fill the report part (cut at exactly ``part_snippets``)."""
        self.report.count(binary)
        while len(binary):
            take = min(len(binary), self.report.room())
            self.report.add(binary[:take], classes[:take])
            self.report.events += self.scoring.track(binary[:take], classes[:take])
            if not self.report.room():
                self.write(final=True)
                self.report.next()
            binary, classes = binary[take:], classes[take:]

    def write(self, final: bool) -> None:
        self.report.write(final, self.reconnects, self.scoring.time_of(self.report.first))

    @property
    def reconnects(self) -> int:
        return max(self.connections - 1, 0)

    def end_segment(self) -> None:
        """The segment ended (a drop, the end, a stop): score what waits, close the open event."""
        self.track(*self.scoring.finish_segment())
        self.report.events += self.scoring.close_event()

    def finish(self, reason: str) -> str:
        """The input is done: its last part written, its result complete; returns the line to log."""
        self.end_segment()
        self.ended = reason
        self.write(final=True)
        r, received = self.result, self.scoring.received
        r.snippets, r.frames = received, received * self.frames_per_snippet
        r.live = {
            "events": self.scoring.events,
            "reconnects": self.reconnects,
            "parts": self.report.part + 1,
            "ended": reason,
            "started_at": utc(self.report.started_at),
        }
        return f"{r.input.display}: ended ({reason}); {received} snippets, {self.scoring.events} event(s)"


class LiveRunner:
    """A live session over the inputs of ``runner`` (settings from its config's ``predict`` section, webhook
    and FFmpeg options from its options), told to the caller through ``hooks``."""

    def __init__(self, runner: PredictRunner, hooks: PredictHooks) -> None:
        self.runner = runner
        self.settings = runner.config.predict
        self.hooks = hooks
        self.log = hooks.log
        check_latency(self.settings.latency, runner.predictor.model.cfg.max_len)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the session to stop (what SIGINT / SIGTERM do)."""
        self._stop.set()

    def run(self, inputs: Sequence[Input]) -> list[InputResult]:
        encoder = self.runner.encoder
        options = self.runner.options
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        lines = EventLines(self.hooks.on_line, options.webhook, self.settings, self.log)
        sessions = [_Session(inp, self.runner, self.settings, stamp, lines) for inp in inputs]
        live = {i: inp for i, inp in enumerate(inputs) if inp.kind != "features"}
        sources = LiveSources(live, encoder.job, self.settings, options.source_options, len(inputs))
        for i, session in enumerate(sessions):
            if i not in live:
                session.ended = "not a live source"
                session.result.error = (
                    f"{session.result.input.display}: feature files are not live sources; "
                    "score them without --live"
                )
        sources.start()
        with self._signals():
            self._loop(sessions, sources)
        for session in sessions:
            if session.ended is None:  # a source that did not hand over its end within the grace period
                self.log(session.finish("stopped"))
        self.runner.histograms.flush()
        lines.close()
        for session in sessions:
            if self.hooks.on_result:
                self.hooks.on_result(session.result)
        return [s.result for s in sessions]

    def _loop(self, sessions: list[_Session], sources: LiveSources) -> None:
        active = set(sources.sources)
        deadline: float | None = None
        last_flush = time.monotonic()
        while active and (deadline is None or time.monotonic() < deadline):
            if self._stop.is_set() and deadline is None:
                self.log("stopping: scoring what has arrived, then writing the reports")
                sources.stop()
                deadline = time.monotonic() + STOP_GRACE_S
            active -= self._handle(sessions, sources.drain())
            if time.monotonic() - last_flush >= self.settings.live_flush_seconds:
                for session in sessions:
                    if session.ended is None:
                        session.write(final=False)
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

    def _score(self, sessions: list[_Session], pending: dict[int, list[Snippet]]) -> None:
        for index, snippets in pending.items():
            sessions[index].score(self.runner.encoder, snippets)

    def _control(self, session: _Session, item: SourceItem) -> None:
        name = session.result.input.display
        if isinstance(item, Connected):
            session.connections += 1
            if session.scoring.tracker.fps is None:
                session.scoring.tracker.fps = session.result.fps = item.fps
            fps = f" ({item.fps:g} fps)" if item.fps else ""
            self.log(
                f"{name}: connected{fps}" + (f" after {item.attempt} attempt(s)" if item.attempt > 1 else "")
            )
        elif isinstance(item, Notice):
            self.log(f"{name}: {item.text}")
        elif isinstance(item, Dropped):
            session.end_segment()
            self.log(f"{name}: dropped ({item.reason}); reconnecting in {item.retry_in:g} s")
        elif isinstance(item, Finished):
            if not item.opened:
                session.result.error = f"{name}: {item.reason}"
            self.log(session.finish(item.reason))

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
