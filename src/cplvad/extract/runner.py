"""Orchestration of ``cplvad extract``: list, skip what is done, decode in workers, encode, write.

Outputs, for a source ``SRC`` and an output root ``DST`` (local folder or ``s3://``):
``DST/<label>/<name>__<k>.npy`` (float32 (T, D), one per crop k), the list ``DST/<list name>`` (VadCLIP
``path,label``, paths relative to ``DST``) and the manifest ``DST/<list stem>.extraction.json``. Every
object is written whole (atomic rename locally, one PUT on S3); the manifest is rewritten after each video
(at most once a second), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from cplvad.clip import ClipBundle, create_clip
from cplvad.config import Config
from cplvad.errors import DataError
from cplvad.extract.encoder import BatchEncoder, resolve_device
from cplvad.extract.manifest import Manifest, OutputNames, npy_bytes, output_names
from cplvad.extract.pool import Chunk, DecodeJob, Done, Failed, Started, decode_events
from cplvad.extract.storage import Sink, VideoSource, list_videos, open_sink
from cplvad.extract.transforms import CropPlan
from cplvad.extract.video import VideoInfo, sample_offsets

CHUNK_BYTES = 8 << 20
"""Upper bound of one frame chunk from a worker (bounds the memory in flight)."""
CHECKPOINT_SECONDS = 1.0


@dataclass
class ExtractionReport:
    manifest: Manifest
    names: OutputNames
    sink: Sink
    selected: int
    skipped: int
    extracted: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    """Failures of this run (name -> reason)."""
    stopped_early: bool = False
    frames: int = 0
    """Video frames decoded by this run (successful videos)."""
    images: int = 0
    """Images encoded by this run (sampled frames x crops)."""
    seconds: float = 0.0
    """Wall time of decode + encode + write."""
    warmup_seconds: float = 0.0
    """Part of ``seconds`` before the first frames arrived (worker start-up)."""


@dataclass
class _InFlight:
    source: VideoSource
    started: float
    expected: int = 0
    parts: list[torch.Tensor] = field(default_factory=list)
    received: int = 0
    info: VideoInfo | None = None


def load_clip(config: Config, device: torch.device) -> tuple[ClipBundle, str]:
    """The configured CLIP and the identity of its weights (checksum, or the seed of a random init)."""
    bundle = create_clip(config.clip, device)
    return bundle, bundle.weights_id


def select_videos(
    src: str, default_label: str, shard: tuple[int, int] | None
) -> list[tuple[int, VideoSource]]:
    """(index in the whole source, video) of this shard, after checking names and labels."""
    videos = list_videos(src, default_label)
    seen: dict[str, VideoSource] = {}
    for v in videos:
        if v.name in seen:
            raise DataError(
                f"{src}: two videos are named {v.name!r} ({seen[v.name].uri} and {v.uri}); output files are "
                "named after the video, so names must be unique: rename one or extract them separately"
            )
        seen[v.name] = v
        if v.label in ("", ".", "..") or any(c in v.label for c in "/\\"):
            raise DataError(f"{src}: video {v.uri} has label {v.label!r}, which cannot name an output folder")
    k, n = shard or (0, 1)
    return [(i, v) for i, v in enumerate(videos) if i % n == k]


def extract(
    src: str,
    dst: str,
    config: Config,
    *,
    list_name: str = "features.csv",
    default_label: str = "Normal",
    shard: tuple[int, int] | None = None,
    strict: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> ExtractionReport:
    """Extract CLIP snippet features of every video of ``src`` (this shard) into ``dst``."""
    cfg = config.extract
    offsets = sample_offsets(cfg.sampling, cfg.frames_per_snippet)
    selected = select_videos(src, default_label, shard)
    sink, names = open_sink(dst), output_names(list_name, shard)
    device = resolve_device(cfg.device)
    bundle, weights = load_clip(config, device)
    settings = {
        "clip_model": config.clip.model,
        "weights": weights,
        "sampling": cfg.sampling,
        "crops": cfg.crops,
        "frames_per_snippet": cfg.frames_per_snippet,
        "image_size": bundle.image_size,
        "embed_dim": bundle.embed_dim,
    }
    plan = CropPlan(cfg.crops, bundle.image_size)
    encoder = BatchEncoder(bundle, plan, device, cfg.batch_size)
    manifest = Manifest(
        settings,
        info={
            "source": src,
            "list": names.list,
            "shard": f"{shard[0]}/{shard[1]}" if shard else None,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "precision": encoder.precision,
        },
    )
    previous = Manifest.load(sink, names.manifest)
    if previous is not None:
        wanted = {v.name for _, v in selected}
        manifest.videos = {n: e for n, e in previous.videos.items() if n in wanted}
        sizes = sink.sizes() if manifest.videos else {}
        manifest.videos = {n: e for n, e in manifest.videos.items() if manifest.is_done(n, sizes)}
    todo = [(i, v) for i, v in selected if v.name not in manifest.videos]
    report = ExtractionReport(
        manifest, names, sink, selected=len(selected), skipped=len(selected) - len(todo)
    )
    if report.skipped:
        log(
            f"{report.skipped} of {len(selected)} videos are already extracted with these settings; skipping them"
        )

    frame_h, frame_w = plan.frame_size
    per_snippet_bytes = len(offsets) * 3 * frame_h * frame_w
    job = DecodeJob(
        frames_per_snippet=cfg.frames_per_snippet,
        offsets=offsets,
        plan=plan,
        snippets_per_chunk=max(
            1, min(encoder.frames_per_batch // len(offsets), CHUNK_BYTES // per_snippet_bytes)
        ),
    )
    sources = dict(todo)
    inflight: dict[int, _InFlight] = {}
    order: deque[list[int]] = deque()  # [video index, rows] in encoder order
    last_save = time.perf_counter()

    def route(outputs: list[torch.Tensor]) -> None:
        for emb in outputs:
            pos = 0
            while pos < len(emb):
                index, rows = order[0]
                take = min(rows, len(emb) - pos)
                if index in inflight:  # else the video failed meanwhile: drop its rows
                    inflight[index].parts.append(emb[pos : pos + take])
                    inflight[index].received += take
                pos += take
                if take == rows:
                    order.popleft()
                else:
                    order[0][1] -= take

    def finish(index: int) -> None:
        nonlocal last_save
        video = inflight.pop(index)
        assert video.info is not None and video.received == video.expected
        t, s = video.info.snippets, len(offsets)
        emb = torch.cat(video.parts).cpu().numpy()
        if emb.shape[0] != t * s:
            raise RuntimeError(
                f"{video.source.uri}: {emb.shape[0]} embeddings for {t} snippets x {s} samples"
            )
        feats = emb.reshape(t, s, cfg.crops, -1).mean(axis=1, dtype=np.float32)
        files = []
        for k in range(cfg.crops):
            rel = f"{video.source.label}/{video.source.name}__{k}.npy"
            sink.write_bytes(rel, npy_bytes(np.ascontiguousarray(feats[:, k], dtype=np.float32)))
            files.append(rel)
        manifest.videos[video.source.name] = {
            "index": index,
            "source": video.source.uri,
            "label": video.source.label,
            "status": "ok",
            "settings_id": manifest.settings_id,
            "frames": video.info.frames,
            "fps": video.info.fps,
            "snippets": t,
            "seconds": round(time.perf_counter() - video.started, 3),
            "files": files,
        }
        report.extracted += 1
        report.frames += video.info.frames
        report.images += t * s * cfg.crops
        if time.perf_counter() - last_save >= CHECKPOINT_SECONDS:
            sink.write_bytes(names.manifest, manifest.to_json())
            last_save = time.perf_counter()

    def fail(index: int, reason: str) -> None:
        inflight.pop(index, None)
        source = sources[index]
        manifest.videos[source.name] = {
            "index": index,
            "source": source.uri,
            "label": source.label,
            "status": "failed",
            "settings_id": manifest.settings_id,
            "reason": reason,
        }
        report.failed[source.name] = reason

    start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="video", disable=not progress or not todo, dynamic_ncols=True)
    tasks = [(i, v.uri) for i, v in todo]
    pin = device.type == "cuda"
    try:
        with contextlib.closing(decode_events(tasks, job, cfg.workers, pin_memory=pin)) as events:
            for event in events:
                if isinstance(event, Started):
                    inflight[event.index] = _InFlight(sources[event.index], time.perf_counter())
                elif isinstance(event, Chunk):
                    if not report.warmup_seconds:
                        report.warmup_seconds = time.perf_counter() - start
                    inflight[event.index].expected += len(event.frames)
                    order.append([event.index, len(event.frames)])
                    route(encoder.add(event.frames))
                elif isinstance(event, Done):
                    inflight[event.index].info = event.info
                elif isinstance(event, Failed):
                    fail(event.index, event.reason)
                    bar.update(1)
                    if strict:
                        report.stopped_early = True
                        break
                for index in [i for i, v in inflight.items() if v.info and v.received == v.expected]:
                    finish(index)
                    bar.update(1)
                    bar.set_postfix_str(f"{report.frames / (time.perf_counter() - start):,.0f} frames/s")
        if not report.stopped_early:
            route(encoder.flush())
            for index in [i for i, v in inflight.items() if v.info]:
                finish(index)
                bar.update(1)
    except BaseException:
        with contextlib.suppress(Exception):  # keep what is done for the resume; the error is what matters
            sink.write_bytes(names.manifest, manifest.to_json())
        raise
    finally:
        bar.close()
    report.seconds = time.perf_counter() - start
    manifest.save(sink, names)
    return report
