"""CLIP snippet features kept in memory (for scoring), from the very code path of ``cplvad extract``.

``FeatureEncoder`` builds the CLIP, the crop plan and the decode job once, from a config's ``clip`` and
``extract`` sections (what a trained model stores), and then:

- ``videos(paths)``: many videos, decoded by the worker processes and encoded in batches of each video's frames
  (``pool.decode_events`` + ``BatchEncoder`` + ``SnippetAssembler``, exactly as extraction does); yields
  ``Encoded`` (features (T, D)) or ``Failed`` per video as each completes.
- ``stream(path)``: one video chunk by chunk: every chunk of decoded snippets is encoded as soon as it is
  there and its features (k, D) are yielded, then the ``VideoInfo``. Memory stays bounded by one chunk
  (about one encoder batch of sampled frames) whatever the video's length: frames are never accumulated.

Features are one view per snippet: with ``extract.crops = 10`` only crop ``__0`` (the centre view, what a
test list uses) is encoded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from cplvad.clip import create_clip
from cplvad.config import Config
from cplvad.extract.assemble import Encoded, SnippetAssembler
from cplvad.extract.clip_encoder import BatchEncoder
from cplvad.extract.pool import Chunk, Done, Failed, decode_events, decode_job
from cplvad.extract.transforms import CropPlan
from cplvad.extract.video import VideoError, VideoInfo, sample_offsets


class FeatureEncoder:
    def __init__(self, config: Config, device: torch.device) -> None:
        cfg = config.extract
        self.device = device
        self.frames_per_snippet = cfg.frames_per_snippet
        self.offsets = sample_offsets(cfg.sampling, cfg.frames_per_snippet)
        self.bundle = create_clip(config.clip, device)
        self.plan = CropPlan(cfg.crops, self.bundle.image_size, centre_only=cfg.crops > 1)
        self.encoder = BatchEncoder(self.bundle, self.plan, device, cfg.batch_size)
        self.workers = cfg.workers
        self.job = decode_job(
            cfg.frames_per_snippet,
            self.offsets,
            self.plan,
            self.encoder.frames_per_batch,
            resize_on_device=device.type == "cuda",
        )

    @property
    def feature_dim(self) -> int:
        return self.bundle.embed_dim

    def videos(self, paths: Sequence[str]) -> Iterator[tuple[int, Encoded | Failed]]:
        """(index in ``paths``, result) for every video, in completion order. Features are (T, D)."""
        tasks = list(enumerate(paths))
        assembler = SnippetAssembler(self.encoder, len(self.offsets))
        pin = self.device.type == "cuda"
        with contextlib.closing(decode_events(tasks, self.job, self.workers, pin_memory=pin)) as events:
            for event in events:
                for item in assembler.handle(event):
                    yield item.index, _one_view(item)

    def stream(self, path: str) -> Iterator[np.ndarray | VideoInfo]:
        """Features (k, D) of each decoded chunk of snippets of one video, in order, then its ``VideoInfo``.

        Decoded in this process (``workers`` 0) or by one worker process (any other value), which then
        decodes the next chunk while this one is encoded. Raises ``VideoError`` when the video fails.
        """
        s = len(self.offsets)
        with contextlib.closing(decode_events([(0, path)], self.job, min(self.workers, 1))) as events:
            for event in events:
                if isinstance(event, Chunk):
                    emb = self.encoder.encode(event.frames)[:, 0].cpu().numpy()  # (k * s, D), one view
                    yield emb.reshape(-1, s, emb.shape[-1]).mean(axis=1, dtype=np.float32)
                elif isinstance(event, Done):
                    yield event.info
                elif isinstance(event, Failed):
                    raise VideoError(event.reason)


def _one_view(item: Encoded | Failed) -> Encoded | Failed:
    if isinstance(item, Failed):
        return item
    return Encoded(item.index, np.ascontiguousarray(item.features[:, 0]), item.info, item.started)
