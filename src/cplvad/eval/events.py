"""Detected events: runs of consecutive snippets whose anomaly score is at or above the threshold.

A run shorter than ``min_snippets`` is dropped. Snippet t covers frames [16t, 16t + 16), so an event of
snippets [a, b) covers frames [16a, 16b) (``end_frame`` exclusive) and, when the frame rate is known, the
seconds [16a / fps, 16b / fps). Its ``class`` is the abnormal class with the highest mean probability over
the event (the normal class is never an event's class), ``class_probability`` that mean, and ``score`` the
highest anomaly score inside it.

``EventTracker`` takes the scores of a video in consecutive pieces and returns each event as soon as the
first snippet below the threshold (or the end of the video) closes it, keeping O(classes) state: what
streaming needs; ``current`` is the open run so far (live mode reports an event when it starts). ``find_events`` runs it over a whole video, so batch and streaming give the same events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Event:
    start_snippet: int
    end_snippet: int
    """Exclusive."""
    start_frame: int
    end_frame: int
    """Exclusive."""
    start_s: float | None
    end_s: float | None
    label: str
    """The ``class`` field of the JSON."""
    class_probability: float
    score: float

    def to_json(self) -> dict[str, Any]:
        return {
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "class": self.label,
            "score": self.score,
            "class_probability": self.class_probability,
            "start_snippet": self.start_snippet,
            "end_snippet": self.end_snippet,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Event:
        return cls(
            d["start_snippet"],
            d["end_snippet"],
            d["start_frame"],
            d["end_frame"],
            d["start_s"],
            d["end_s"],
            d["class"],
            d["class_probability"],
            d["score"],
        )


class EventTracker:
    def __init__(
        self,
        threshold: float,
        min_snippets: int,
        classes: Sequence[str],
        frames_per_snippet: int = 16,
        fps: float | None = None,
    ) -> None:
        self.threshold = threshold
        self.min_snippets = min_snippets
        self.classes = list(classes)
        self.frames_per_snippet = frames_per_snippet
        self.fps = fps
        self.offset = 0
        """Snippets seen so far."""
        self._start: int | None = None
        self._sum = np.zeros(len(self.classes), dtype=np.float64)
        self._max = 0.0

    def update(self, binary: np.ndarray, classes: np.ndarray) -> list[Event]:
        """The next snippets of the video: anomaly scores (k,) and class probabilities (k, M)."""
        above = binary >= self.threshold
        state = np.concatenate([[self._start is not None], above]).astype(np.int8)
        pos, events = 0, []
        for edge in np.flatnonzero(np.diff(state)):  # the state flips between snippet edge - 1 and edge
            if self._start is None:
                self._start = self.offset + int(edge)
            else:
                self._extend(binary[pos:edge], classes[pos:edge])
                events += self._close(self.offset + int(edge))
            pos = int(edge)
        if self._start is not None:
            self._extend(binary[pos:], classes[pos:])
        self.offset += len(binary)
        return events

    def finish(self) -> list[Event]:
        """The end of the video closes an open run."""
        return self._close(self.offset) if self._start is not None else []

    def _extend(self, binary: np.ndarray, classes: np.ndarray) -> None:
        if len(binary):
            self._sum += classes.sum(axis=0, dtype=np.float64)
            self._max = max(self._max, float(binary.max()))

    def current(self) -> Event | None:
        """The open run so far (ending at the last snippet seen), once it is ``min_snippets`` long: an event
        that has started (live mode reports it before it ends)."""
        if self._start is None or self.offset - self._start < self.min_snippets:
            return None
        return self._event(self._start, self.offset, self._sum, self._max)

    def _close(self, end: int) -> list[Event]:
        start, total, peak = self._start, self._sum, self._max
        assert start is not None
        self._start, self._sum, self._max = None, np.zeros_like(self._sum), 0.0
        if end - start < self.min_snippets:
            return []
        return [self._event(start, end, total, peak)]

    def _event(self, start: int, end: int, total: np.ndarray, peak: float) -> Event:
        mean = total / (end - start)
        best = 1 + int(np.argmax(mean[1:])) if len(mean) > 1 else 0
        f0, f1 = start * self.frames_per_snippet, end * self.frames_per_snippet
        return Event(
            start_snippet=start,
            end_snippet=end,
            start_frame=f0,
            end_frame=f1,
            start_s=round(f0 / self.fps, 3) if self.fps else None,
            end_s=round(f1 / self.fps, 3) if self.fps else None,
            label=self.classes[best],
            class_probability=round(float(mean[best]), 6),
            score=round(peak, 6),
        )


def find_events(
    binary: np.ndarray,
    classes: np.ndarray,
    threshold: float,
    min_snippets: int,
    class_names: Sequence[str],
    frames_per_snippet: int = 16,
    fps: float | None = None,
) -> list[Event]:
    """Every event of one whole video."""
    tracker = EventTracker(threshold, min_snippets, class_names, frames_per_snippet, fps)
    return tracker.update(binary, classes) + tracker.finish()
