"""Streaming scorer: one video's snippet features arrive in pieces; they are scored n at a time (n = the
model's ``max_len``), in chunks aligned at snippet 0 exactly as batch scoring cuts them, so the scores equal
those of scoring the whole video at once. Events come out of ``add`` as soon as a scored chunk closes
them: at the latest when the chunk of n snippets holding an event's end has arrived.

Memory: at most n - 1 snippets wait between calls (plus the piece being added); only the per-snippet
scores (1 + M floats per snippet) are kept, for the final report.
"""

from __future__ import annotations

import numpy as np
import torch

from cplvad.data.features import chunk
from cplvad.errors import DataError
from cplvad.eval.events import Event, EventTracker
from cplvad.eval.scoring import score_chunks
from cplvad.modeling.dual_branch import CPLVAD


class StreamScorer:
    def __init__(
        self, model: CPLVAD, device: torch.device, tracker: EventTracker, source: str = "input"
    ) -> None:
        self.model = model.eval()
        self.device = device
        self.tracker = tracker
        self.source = source
        self.n = model.cfg.max_len
        self._pending: list[np.ndarray] = []
        self._count = 0
        self._binary: list[np.ndarray] = []
        self._classes: list[np.ndarray] = []
        self.peak_pending = 0
        """Most snippets of features held at once (a check that memory does not grow with the video)."""

    def add(self, feats: np.ndarray) -> list[Event]:
        """The next (k, D) snippet features; returns the events that the newly scored chunks closed."""
        if feats.ndim != 2 or feats.shape[1] != self.model.feature_dim:
            raise DataError(
                f"{self.source}: features of shape {feats.shape} but the model expects (T, {self.model.feature_dim}); "
                "features and model must come from the same CLIP model"
            )
        self._pending.append(feats)
        self._count += len(feats)
        self.peak_pending = max(self.peak_pending, self._count)
        events: list[Event] = []
        while self._count >= self.n:
            events += self._score(self._take(self.n))
        return events

    def finish(self) -> list[Event]:
        """Score the last, partial chunk; the end of the video closes an open event."""
        events = self._score(self._take(self._count)) if self._count else []
        return events + self.tracker.finish()

    @property
    def snippets(self) -> int:
        return sum(len(b) for b in self._binary)

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Anomaly scores (T,) and class probabilities (T, M) of everything scored so far."""
        m = len(self.tracker.classes)
        binary = np.concatenate(self._binary) if self._binary else np.zeros(0, np.float32)
        classes = np.concatenate(self._classes) if self._classes else np.zeros((0, m), np.float32)
        return binary, classes

    def _take(self, k: int) -> np.ndarray:
        feats = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        taken, rest = feats[:k], feats[k:]
        self._pending = [rest] if len(rest) else []
        self._count = len(rest)
        return taken

    def _score(self, feats: np.ndarray) -> list[Event]:
        x, lengths = chunk(np.asarray(feats, dtype=np.float32), self.n)
        b, c = score_chunks(
            self.model, torch.from_numpy(x).to(self.device), torch.from_numpy(lengths).to(self.device)
        )
        b = b[0, : len(feats)].cpu().numpy()
        c = c[0, : len(feats)].cpu().numpy()
        self._binary.append(b)
        self._classes.append(c)
        return self.tracker.update(b, c)
