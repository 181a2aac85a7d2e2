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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from cplvad.clip import ClipBundle, create_clip
from cplvad.config import Config
from cplvad.device import resolve_device
from cplvad.errors import DataError
from cplvad.extract.assemble import Encoded, SnippetAssembler
from cplvad.extract.clip_encoder import BatchEncoder
from cplvad.extract.manifest import Manifest, OutputNames, list_problem, npy_bytes, output_names
from cplvad.extract.options import ExtractOptions
from cplvad.extract.pool import DecodeJob, Failed, Started, decode_events, decode_job
from cplvad.extract.sources import VideoSource, list_videos
from cplvad.extract.transforms import CropPlan
from cplvad.extract.video import sample_offsets
from cplvad.redact import redact
from cplvad.storage.location import Location, open_location

CHECKPOINT_SECONDS = 1.0


@dataclass
class ExtractionReport:
    manifest: Manifest
    names: OutputNames
    sink: Location
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
    """Part of ``seconds`` before the first video started decoding (worker start-up)."""


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
    options: ExtractOptions | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> ExtractionReport:
    """Extract CLIP snippet features of every video of ``src`` (this shard) into ``dst``; ``options``: the
    list's name, the default label, the shard, strictness. The caller checks the source, destination and
    weights first (the commands run their pre-run checks before calling this)."""
    options = options or ExtractOptions()
    shard, cfg = options.shard_range, config.extract
    selected = select_videos(src, options.default_label, shard)
    sink, names = open_location(dst), output_names(options.list_name, shard)
    device = resolve_device(cfg.device, "extract.device")
    bundle, weights = load_clip(config, device)
    plan = CropPlan(cfg.crops, bundle.image_size)
    encoder = BatchEncoder(bundle, plan, device, cfg.batch_size)
    manifest = _new_manifest(config, bundle, weights, encoder, src=src, names=names, shard=shard)
    todo = _not_yet_extracted(manifest, _previous_manifest(sink, names, log), sink, selected)
    report = ExtractionReport(
        manifest, names, sink, selected=len(selected), skipped=len(selected) - len(todo)
    )
    if report.skipped:
        log(
            f"{report.skipped} of {len(selected)} videos are already extracted with these settings; skipping them"
        )
    offsets = sample_offsets(cfg.sampling, cfg.frames_per_snippet)
    job = decode_job(
        cfg.frames_per_snippet,
        offsets,
        plan,
        encoder.frames_per_batch,
        resize_on_device=device.type == "cuda",
    )
    run = _ExtractionRun(report, dict(todo), crops=cfg.crops, sampled_per_snippet=len(offsets))
    run.process(
        todo,
        job,
        SnippetAssembler(encoder, len(offsets)),
        workers=cfg.workers,
        pin=device.type == "cuda",
        strict=options.strict,
        progress=progress,
    )
    manifest.save(sink, names)
    return report


def _new_manifest(
    config: Config,
    bundle: ClipBundle,
    weights: str,
    encoder: BatchEncoder,
    *,
    src: str,
    names: OutputNames,
    shard: tuple[int, int] | None,
) -> Manifest:
    """The settings every output depends on (hashed into ``settings_id``) and the facts of this run."""
    cfg = config.extract
    settings = {
        "clip_model": config.clip.model,
        "weights": weights,
        "sampling": cfg.sampling,
        "crops": cfg.crops,
        "frames_per_snippet": cfg.frames_per_snippet,
        "image_size": bundle.image_size,
        "embed_dim": bundle.embed_dim,
    }
    device = encoder.device
    info = {
        "source": src,
        "list": names.list,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": encoder.precision,
    }
    return Manifest(settings, info=info)


def _previous_manifest(sink: Location, names: OutputNames, log: Callable[[str], None]) -> Manifest | None:
    """The manifest of an earlier run, if any; a damaged one is set aside (kept) and the run starts afresh."""
    try:
        return Manifest.load(sink, names.manifest)
    except DataError as exc:
        aside = sink.set_aside(names.manifest)
        log(f"warning: {str(exc).split('; ')[0]}; kept as {aside}, and every video is extracted again")
        return None


def _not_yet_extracted(
    manifest: Manifest, previous: Manifest | None, sink: Location, selected: list[tuple[int, VideoSource]]
) -> list[tuple[int, VideoSource]]:
    """Carry over the previous run's finished videos (same settings, files intact); return the others."""
    if previous is not None:
        wanted = {v.name for _, v in selected}
        manifest.videos = {n: e for n, e in previous.videos.items() if n in wanted}
        sizes = sink.sizes() if manifest.videos else {}
        manifest.videos = {n: e for n, e in manifest.videos.items() if manifest.is_done(n, sizes)}
    return [(i, v) for i, v in selected if v.name not in manifest.videos]


class _ExtractionRun:
    """Writes each encoded video's files and manifest entry as it completes; records failures."""

    def __init__(
        self,
        report: ExtractionReport,
        sources: dict[int, VideoSource],
        *,
        crops: int,
        sampled_per_snippet: int,
    ) -> None:
        self.report = report
        self.sources = sources
        self.crops = crops
        self.sampled_per_snippet = sampled_per_snippet
        self.last_save = time.perf_counter()

    def process(
        self,
        todo: list[tuple[int, VideoSource]],
        job: DecodeJob,
        assembler: SnippetAssembler,
        *,
        workers: int,
        pin: bool,
        strict: bool,
        progress: bool,
    ) -> None:
        """Decode in workers, encode in batches, write as videos complete; the manifest survives an error."""
        report = self.report
        start = time.perf_counter()
        bar = tqdm(total=len(todo), unit="video", disable=not progress or not todo, dynamic_ncols=True)
        tasks = [(i, v.uri) for i, v in todo]
        try:
            with contextlib.closing(decode_events(tasks, job, workers, pin_memory=pin)) as events:
                for event in events:
                    if isinstance(event, Started) and not report.warmup_seconds:
                        report.warmup_seconds = time.perf_counter() - start
                    for item in assembler.handle(event):
                        bar.update(1)
                        if isinstance(item, Failed):
                            self.fail(item.index, item.reason)
                        elif self.finish(item):
                            bar.set_postfix_str(
                                f"{report.frames / (time.perf_counter() - start):,.0f} frames/s"
                            )
                        report.stopped_early = strict and bool(report.failed)
                    if report.stopped_early:
                        break
        except BaseException:
            with contextlib.suppress(
                Exception
            ):  # keep what is done for the resume; the error is what matters
                report.sink.write_bytes(report.names.manifest, report.manifest.to_json())
            raise
        finally:
            bar.close()
            report.seconds = time.perf_counter() - start

    def finish(self, video: Encoded) -> bool:
        """Write one video's crops, then its manifest entry (the manifest at most once a second); a video
        whose files the list could not name fails instead (False)."""
        report, source = self.report, self.sources[video.index]
        t, feats = video.info.snippets, video.features
        files = [f"{source.label}/{source.name}__{k}.npy" for k in range(self.crops)]
        problem = list_problem(files, source.label, report.sink)
        if problem is not None:
            self.fail(video.index, problem)
            return False
        for k, rel in enumerate(files):
            report.sink.write_bytes(rel, npy_bytes(np.ascontiguousarray(feats[:, k], dtype=np.float32)))
        report.manifest.videos[source.name] = {
            **self._entry(video.index, "ok"),
            "frames": video.info.frames,
            "fps": video.info.fps,
            "snippets": t,
            "seconds": round(time.perf_counter() - video.started, 3),
            "files": files,
        }
        report.extracted += 1
        report.frames += video.info.frames
        report.images += t * self.sampled_per_snippet * self.crops
        if time.perf_counter() - self.last_save >= CHECKPOINT_SECONDS:
            report.sink.write_bytes(report.names.manifest, report.manifest.to_json())
            self.last_save = time.perf_counter()
        return True

    def fail(self, index: int, reason: str) -> None:
        """Record why a video failed (credentials in the reason masked: the manifest is printed and logged)."""
        source, reason = self.sources[index], redact(reason)
        self.report.manifest.videos[source.name] = {**self._entry(index, "failed"), "reason": reason}
        self.report.failed[source.name] = reason

    def _entry(self, index: int, status: str) -> dict[str, Any]:
        source = self.sources[index]
        return {
            "index": index,
            "source": source.uri,
            "label": source.label,
            "status": status,
            "settings_id": self.report.manifest.settings_id,
        }
