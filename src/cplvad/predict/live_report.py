"""What a live session writes and sends: the event lines, to the caller (``on_line``: the CLI prints them)
and to the ``--webhook``; and each input's report, ``OUT/<name>.<session start>.json`` (schema
``cplvad-prediction/1`` with a ``live`` record, ``cplvad.predict.report``), rewritten while it grows and
continued in ``....part0001.json``, ... every ``predict.live_part_snippets`` snippets, so memory stays
bounded. Every scored snippet also counts in its source's daily score histogram
(``cplvad.monitor.histograms``), which ``cplvad monitor`` compares for drift.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from cplvad.config import PredictConfig
from cplvad.eval.events import Event
from cplvad.predict.report import utc
from cplvad.predict.run import InputResult, PredictRunner
from cplvad.predict.webhook import Webhook


class EventLines:
    """The event lines of a session, to ``on_line`` and (in the background, retried) to ``webhook``."""

    def __init__(
        self,
        on_line: Callable[[dict[str, Any]], None] | None,
        webhook: str | None,
        settings: PredictConfig,
        log: Callable[[str], None],
    ) -> None:
        self.on_line = on_line
        self.log = log
        self.webhook = (
            Webhook(webhook, log, timeout=settings.webhook_timeout, retries=settings.webhook_retries)
            if webhook
            else None
        )

    def emit(self, line: dict[str, Any]) -> None:
        if self.on_line:
            self.on_line(line)
        if self.webhook:
            self.webhook.post(line)

    def close(self) -> None:
        """Deliver what the webhook still holds (a few seconds at most) and say what became of the lines."""
        if self.webhook:
            stats = self.webhook.close()
            self.log(
                f"webhook {self.webhook.display}: {stats.delivered} delivered, {stats.failed} failed, "
                f"{stats.dropped} dropped"
            )


class ReportParts:
    """One input's report, part by part: the scores and ended events of the current part, written as
    ``OUT/<name>.json`` (part 0) or ``OUT/<name>.partNNNN.json``."""

    def __init__(self, runner: PredictRunner, result: InputResult, name: str, part_snippets: int) -> None:
        self.runner = runner
        self.result = result
        self.name = name
        self.size = part_snippets
        self.started_at = time.time()
        self.part = 0
        self.first = 0
        """The session snippet the current part starts at."""
        self.length = 0
        self.binary: list[np.ndarray] = []
        self.classes: list[np.ndarray] = []
        self.events: list[Event] = []

    def count(self, binary: np.ndarray) -> None:
        """Scored snippets of the session into its source's histogram."""
        self.runner.count_scores(self.result.input, self.name, binary)

    def room(self) -> int:
        """Snippets the current part still takes."""
        return self.size - self.length

    def add(self, binary: np.ndarray, classes: np.ndarray) -> None:
        self.binary.append(binary)
        self.classes.append(classes)
        self.length += len(binary)

    def write(self, final: bool, reconnects: int, first_time: float | None) -> None:
        """Write the current part (nothing before its first scored snippet); ``first_time``: when its
        first snippet arrived, if known."""
        if not self.length:
            return
        per_snippet = self.runner.scoring.frames_per_snippet
        binary = np.concatenate(self.binary)
        classes = np.concatenate(self.classes)
        live = {
            "part": self.part,
            "first_snippet": self.first,
            "first_frame": self.first * per_snippet,
            "started_at": utc(self.started_at),
            "part_started_at": utc(first_time) if first_time else None,
            "updated_at": utc(time.time()),
            "reconnects": reconnects,
            "final": final,
        }
        name = self.name if self.part == 0 else f"{self.name}.part{self.part:04d}"
        self.result.frames = len(binary) * per_snippet
        self.runner.write_document(self.result, binary, classes, list(self.events), name=name, live=live)

    def next(self) -> None:
        """Start the next part."""
        self.part += 1
        self.first += self.length
        self.length = 0
        self.binary, self.classes, self.events = [], [], []
