"""The scoring of one live source: the snippets that arrived are CLIP-encoded one encoder batch at a time,
scored by the sliding window as soon as ``latency`` snippets of future context are in (``SlidingScorer``),
and followed by an ``EventTracker``; an event is reported as a line when it starts and when it ends (the
lines are described in ``cplvad.predict.live``).

Snippet counts run over the whole session: a drop ends the segment (``finish_segment`` scores what waits,
``close_event`` closes the open event) and the next one continues the count.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cplvad.eval.events import Event, EventTracker
from cplvad.extract.inmemory import FeatureEncoder
from cplvad.extract.transforms import frames_tensor
from cplvad.predict.live_source import QUEUE_SNIPPETS, Snippet
from cplvad.predict.report import utc
from cplvad.predict.run import SCORE_BATCH, PredictRunner
from cplvad.predict.sliding import SlidingScorer

Scores = tuple[np.ndarray, np.ndarray]
"""Anomaly scores (r,) and class probabilities (r, M) of r snippets."""


class LiveScoring:
    """One source's window, events and the arrival times of its recent snippets; ``emit`` takes each line."""

    def __init__(
        self, runner: PredictRunner, latency: int, display: str, emit: Callable[[dict[str, Any]], None]
    ) -> None:
        p, s = runner.predictor, runner.scoring
        self.display = display
        self.emit = emit
        self.scorer = SlidingScorer(p.model, p.device, latency, SCORE_BATCH)
        self.tracker = EventTracker(s.threshold.value, s.min_event_snippets, p.classes, s.frames_per_snippet)
        self.times: deque[tuple[int, float]] = deque(maxlen=latency + 4 * QUEUE_SNIPPETS)
        """(session snippet, arrival time) of recent snippets."""
        self.received = 0
        self.announced: tuple[int, float] | None = None
        """(start snippet, start time) of the open event whose start was reported."""
        self.events = 0

    def score(self, encoder: FeatureEncoder, snippets: list[Snippet]) -> Iterator[Scores]:
        """Encode the snippets one CLIP batch at a time; after each, the scores that became final."""
        step = max(1, encoder.encoder.frames_per_batch // len(encoder.offsets))
        for k in range(0, len(snippets), step):
            batch = snippets[k : k + step]
            feats = encoder.encode_snippets(frames_tensor(np.stack([f for s in batch for f in s.frames])))
            for s in batch:
                self.times.append((self.received, s.arrived))
                self.received += 1
            yield self.scorer.add(feats)

    def finish_segment(self) -> Scores:
        """The segment ended: the scores of the snippets still waiting for future context."""
        return self.scorer.finish()

    def track(self, binary: np.ndarray, classes: np.ndarray) -> list[Event]:
        """Follow the events over scored snippets, reporting starts and ends; returns the events that ended."""
        ended = self.tracker.update(binary, classes)
        for event in ended:
            self._ended(event)
        current = self.tracker.current()
        if current is not None and (self.announced is None or self.announced[0] != current.start_snippet):
            self._started(current)
        return ended

    def close_event(self) -> list[Event]:
        """The segment ended: the open event ends with it (returned when there was one)."""
        ended = self.tracker.finish()
        for event in ended:
            self._ended(event)
        return ended

    def time_of(self, snippet: int) -> float | None:
        """When the session's snippet ``snippet`` arrived, if it is recent enough to be known."""
        for index, t in reversed(self.times):
            if index == snippet:
                return t
            if index < snippet:
                break
        return None

    def _started(self, event: Event) -> None:
        start_time = self.time_of(event.start_snippet) or time.time()
        self.announced = (event.start_snippet, start_time)
        self.events += 1
        self.emit(
            {
                "type": "event_start",
                "input": self.display,
                "event": self.events,
                "start_snippet": event.start_snippet,
                "start_frame": event.start_frame,
                "start_s": event.start_s,
                "start_time": utc(start_time),
                "class": event.label,
                "score": event.score,
                "received_snippets": self.received,
            }
        )

    def _ended(self, event: Event) -> None:
        if self.announced is None or self.announced[0] != event.start_snippet:
            self._started(event)  # it started and ended within one scored batch
        assert self.announced is not None
        end_time = self.time_of(event.end_snippet - 1) or time.time()
        self.emit(
            {
                "type": "event_end",
                "input": self.display,
                "event": self.events,
                **event.to_json(),
                "start_time": utc(self.announced[1]),
                "end_time": utc(end_time),
                "received_snippets": self.received,
            }
        )
        self.announced = None
