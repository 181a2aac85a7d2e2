"""Sliding-window scoring for live sources: every snippet is scored once, as soon as ``latency`` snippets
after it have arrived, in the window of the last n snippets (n = the model's ``max_len``, the length it
was trained on) that ends ``latency`` snippets after it.

So snippet t sees n - 1 - latency snippets of past and ``latency`` of future context; at the start of a
segment the window is shorter (the snippets since the start, padded and masked exactly like the last chunk
of batch scoring), and at its end the last ``latency`` snippets are scored in the final window, with less
future. With ``latency`` = n - 1 a segment of at most n snippets gets the scores of batch scoring.
Batch scoring cuts aligned chunks of n instead, so a snippet there sees anything between 0 and n - 1
snippets of future, and an event is reported up to n snippets late.

Memory: the features of the last n snippets (and the piece being added), whatever the length of the
segment. Cost: one forward pass over n snippets per snippet (windows are batched).
"""

from __future__ import annotations

import numpy as np
import torch

from cplvad.errors import ConfigError, DataError
from cplvad.eval.scoring import score_chunks
from cplvad.modeling.dual_branch import CPLVAD


def check_latency(latency: int, max_len: int) -> int:
    if not 0 <= latency < max_len:
        raise ConfigError(
            f"--latency {latency}: the window holds n = {max_len} snippets (the model's max_len), so the "
            f"latency must be between 0 and {max_len - 1} snippets"
        )
    return latency


class SlidingScorer:
    def __init__(self, model: CPLVAD, device: torch.device, latency: int, batch_size: int = 64) -> None:
        self.model = model.eval()
        self.device = device
        self.n = model.cfg.max_len
        self.latency = check_latency(latency, self.n)
        self.batch_size = batch_size
        self._feats = np.zeros((0, model.feature_dim), np.float32)
        """Features of snippets [received - len(_feats), received) of this segment."""
        self.received = 0
        """Snippets of this segment so far."""
        self.scored = 0
        """Snippets of this segment whose scores were returned."""

    def add(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The next (k, D) features; returns anomaly scores (r,) and class probabilities (r, M) of the
        r snippets that became final (the oldest unscored ones)."""
        if feats.ndim != 2 or feats.shape[1] != self.model.feature_dim:
            raise DataError(
                f"features of shape {feats.shape} but the model expects (T, {self.model.feature_dim}); "
                "features and model must come from the same CLIP model"
            )
        self._feats = np.concatenate([self._feats, np.asarray(feats, np.float32)])
        self.received += len(feats)
        targets = np.arange(self.scored, max(self.scored, self.received - self.latency))
        return self._score(targets, targets + self.latency)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """The end of the segment: score the snippets still waiting for future context, then start over."""
        targets = np.arange(self.scored, self.received)
        scores = self._score(targets, np.full(len(targets), self.received - 1))
        self._feats = self._feats[:0]
        self.received = self.scored = 0
        return scores

    @property
    def waiting(self) -> int:
        """Snippets received but not scored yet (at most ``latency``)."""
        return self.received - self.scored

    def _score(self, targets: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score snippet targets[i] in the window that ends at snippet ends[i] (indices in the segment)."""
        m = self.model.n_classes
        if not len(targets):
            return np.zeros(0, np.float32), np.zeros((0, m), np.float32)
        first = self.received - len(self._feats)  # segment index of _feats[0]
        starts = np.maximum(0, ends - self.n + 1)
        binary, classes = [], []
        for s in range(0, len(targets), self.batch_size):
            b, c = self._score_windows(
                starts[s : s + self.batch_size] - first,
                ends[s : s + self.batch_size] - first,
                targets[s : s + self.batch_size] - first,
            )
            binary.append(b)
            classes.append(c)
        self.scored = int(targets[-1]) + 1
        self._feats = self._feats[max(0, len(self._feats) - self.n) :]  # the final window needs n
        return np.concatenate(binary), np.concatenate(classes)

    def _score_windows(
        self, starts: np.ndarray, ends: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Windows [starts[i], ends[i]] of ``_feats``, each scored at targets[i]."""
        windows = np.zeros((len(starts), self.n, self._feats.shape[1]), np.float32)
        lengths = ends - starts + 1
        for i, (a, length) in enumerate(zip(starts, lengths, strict=True)):
            windows[i, :length] = self._feats[a : a + length]
        x = torch.from_numpy(windows).to(self.device)
        b, c = score_chunks(self.model, x, torch.from_numpy(lengths).to(self.device))
        rows = torch.arange(len(starts), device=b.device)
        at = torch.from_numpy(targets - starts).to(b.device)
        return b[rows, at].cpu().numpy(), c[rows, at].cpu().numpy()


def sliding_scores(
    model: CPLVAD, feats: np.ndarray, latency: int, device: torch.device, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Live scores of a whole (T, D) segment at once: what ``SlidingScorer`` returns piece by piece."""
    scorer = SlidingScorer(model, device, latency, batch_size)
    b1, c1 = scorer.add(feats)
    b2, c2 = scorer.finish()
    return np.concatenate([b1, b2]), np.concatenate([c1, c2])
