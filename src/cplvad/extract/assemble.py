"""Turn decode events plus batched encoder outputs back into per-video snippet features.

Each video's frames go to the encoder under the video's index and come back in its own batches
(``BatchEncoder``: batches never mix videos), so its features do not depend on the other videos of the
run. A video is complete once its ``Done`` arrived and its last, partial batch is encoded; its features are
the mean over the sampled frames of each snippet: (T, views, D) float32. Shared by ``cplvad extract``
(which writes them) and scoring (which keeps them in memory), so both see exactly the same features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from cplvad.extract.clip_encoder import BatchEncoder
from cplvad.extract.pool import Chunk, Done, Event, Failed, Started
from cplvad.extract.video import VideoInfo


@dataclass(frozen=True)
class Encoded:
    index: int
    features: np.ndarray
    """(T, views, D) float32: one row per snippet and encoded view (crop)."""
    info: VideoInfo
    started: float
    """``time.perf_counter()`` when its decoding started."""


@dataclass
class _InFlight:
    started: float
    parts: list[torch.Tensor] = field(default_factory=list)


class SnippetAssembler:
    """Feed it decode events (``handle``); it returns finished videos and failures."""

    def __init__(self, encoder: BatchEncoder, samples: int) -> None:
        self.encoder = encoder
        self.samples = samples
        """Frames encoded per snippet (``len(sample_offsets(...))``)."""
        self._inflight: dict[int, _InFlight] = {}

    def handle(self, event: Event) -> list[Encoded | Failed]:
        """Process one event; return the video it completed or the failure it reports."""
        if isinstance(event, Started):
            self._inflight[event.index] = _InFlight(time.perf_counter())
        elif isinstance(event, Chunk):
            self._inflight[event.index].parts += self.encoder.add(event.index, event.frames)
        elif isinstance(event, Done):
            self._inflight[event.index].parts += self.encoder.finish(event.index)
            return [self._finish(event.index, event.info)]
        elif isinstance(event, Failed):
            self._inflight.pop(event.index, None)
            self.encoder.drop(event.index)
            return [event]
        return []

    def _finish(self, index: int, info: VideoInfo) -> Encoded:
        video = self._inflight.pop(index)
        t, s = info.snippets, self.samples
        emb = torch.cat(video.parts).cpu().numpy()
        if emb.shape[0] != t * s:
            raise RuntimeError(f"video {index}: {emb.shape[0]} embeddings for {t} snippets x {s} samples")
        views = self.encoder.plan.views
        feats = emb.reshape(t, s, views, -1).mean(axis=1, dtype=np.float32)
        return Encoded(index, feats, info, video.started)
