"""Turn decode events plus batched encoder outputs back into per-video snippet features.

The encoder consumes frames strictly in arrival order, whatever video they come from; the assembler keeps
that order (video, rows) and hands every output row back to its video. A video is complete once its
``Done`` arrived and all its rows came back; its features are the mean over the sampled frames of each
snippet: (T, views, D) float32. Shared by ``cplvad extract`` (which writes them) and scoring (which keeps
them in memory), so both see exactly the same features.
"""

from __future__ import annotations

import time
from collections import deque
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
    expected: int = 0
    parts: list[torch.Tensor] = field(default_factory=list)
    received: int = 0
    info: VideoInfo | None = None


class SnippetAssembler:
    """Feed it decode events (``handle``) and, at the end, ``flush``; it returns finished videos and failures."""

    def __init__(self, encoder: BatchEncoder, samples: int) -> None:
        self.encoder = encoder
        self.samples = samples
        """Frames encoded per snippet (``len(sample_offsets(...))``)."""
        self._inflight: dict[int, _InFlight] = {}
        self._order: deque[list[int]] = deque()  # [video index, rows] in encoder order

    def handle(self, event: Event) -> list[Encoded | Failed]:
        """Process one event; return the failure it reports and every video it completed."""
        out: list[Encoded | Failed] = []
        if isinstance(event, Started):
            self._inflight[event.index] = _InFlight(time.perf_counter())
        elif isinstance(event, Chunk):
            self._inflight[event.index].expected += len(event.frames)
            self._order.append([event.index, len(event.frames)])
            self._route(self.encoder.add(event.frames))
        elif isinstance(event, Done):
            self._inflight[event.index].info = event.info
        elif isinstance(event, Failed):
            self._inflight.pop(event.index, None)  # rows of it still in the encoder are dropped
            out.append(event)
        return out + self._complete()

    def flush(self) -> list[Encoded]:
        """Encode the last partial batch; return the videos it completed."""
        self._route(self.encoder.flush())
        return self._complete()

    def _complete(self) -> list[Encoded]:
        """Finish every video whose ``Done`` arrived and whose rows all came back."""
        done = [i for i, v in self._inflight.items() if v.info and v.received == v.expected]
        return [self._finish(i) for i in done]

    def _route(self, outputs: list[torch.Tensor]) -> None:
        for emb in outputs:
            pos = 0
            while pos < len(emb):
                index, rows = self._order[0]
                take = min(rows, len(emb) - pos)
                if index in self._inflight:  # else the video failed meanwhile: drop its rows
                    self._inflight[index].parts.append(emb[pos : pos + take])
                    self._inflight[index].received += take
                pos += take
                if take == rows:
                    self._order.popleft()
                else:
                    self._order[0][1] -= take

    def _finish(self, index: int) -> Encoded:
        video = self._inflight.pop(index)
        assert video.info is not None and video.received == video.expected
        t, s = video.info.snippets, self.samples
        emb = torch.cat(video.parts).cpu().numpy()
        if emb.shape[0] != t * s:
            raise RuntimeError(f"video {index}: {emb.shape[0]} embeddings for {t} snippets x {s} samples")
        views = self.encoder.plan.views
        feats = emb.reshape(t, s, views, -1).mean(axis=1, dtype=np.float32)
        return Encoded(index, feats, video.info, video.started)
