"""Feature extraction throughput: decode alone, encode alone, end to end (not a test; prints figures).

    .venv/bin/python benchmarks/bench_extract.py                       # CPU: cplvad-tiny, fp32
    python benchmarks/bench_extract.py --device cuda --videos 256 --frames 3000 --workers 15
                                                                        # GPU: ViT-B-16-quickgelu, fp16

Generates its own UCF-like videos (320x240, 30 fps, H.264, synthetic moving scenes) in a temporary folder:
``--unique`` distinct videos, hard-linked up to ``--videos`` files. Units: *frames/s* are video frames
(every frame counts, decoded or skipped; with ``center`` sampling one frame in 16 is encoded), *images/s* are encoder
inputs. Encode alone = the batched encoder on ready-made resized frames (host-to-device copy included).
End to end = ``cplvad.extract.runner.extract`` into a temporary folder, with the worker start-up time
reported separately. The check: end-to-end images/s >= 70 % of encode-alone images/s (the decoders keep
the encoder fed).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from cplvad.config import Config
from cplvad.device import resolve_device
from cplvad.extract.clip_encoder import BatchEncoder
from cplvad.extract.demo_videos import VideoPlan, render, write_video
from cplvad.extract.pool import Chunk, DecodeJob, Done, Failed, Started, decode_events, decode_job
from cplvad.extract.runner import extract, load_clip
from cplvad.extract.transforms import CropPlan, resize_rgb
from cplvad.extract.video import VideoInfo, decode_snippets, sample_offsets

TARGET_RATIO = 0.70


def _make_video(args: tuple[Path, int, int, int, int]) -> int:
    path, seed, frames, width, height = args
    return write_video(
        path, render(VideoPlan(path.stem, "Normal", frames, (), seed), width, height), fps=30, codec="libx264"
    )


def make_videos(root: Path, n: int, unique: int, frames: int, width: int, height: int, workers: int) -> Path:
    folder = root / "videos"
    folder.mkdir(parents=True)
    originals = [folder / f"bench_{i:05d}.mp4" for i in range(min(unique, n))]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(_make_video, [(p, i, frames, width, height) for i, p in enumerate(originals)]))
    for i in range(len(originals), n):
        os.link(originals[i % len(originals)], folder / f"bench_{i:05d}.mp4")
    return folder


def bench_decode(videos: list[Path], job: DecodeJob, workers: int) -> tuple[float, float, int, int]:
    """(seconds, seconds before the first video started decoding, frames, images)."""
    start = time.perf_counter()
    first = 0.0
    frames = images = 0
    for event in decode_events([(i, str(p)) for i, p in enumerate(videos)], job, workers):
        if isinstance(event, Started):
            first = first or time.perf_counter() - start
        elif isinstance(event, Chunk):
            images += len(event.frames)
        elif isinstance(event, Done):
            frames += event.info.frames
        elif isinstance(event, Failed):
            raise RuntimeError(event.reason)
    return time.perf_counter() - start, first, frames, images


def one_process_fps(videos: list[Path], job: DecodeJob) -> dict[str, float]:
    """Frames/s of one process with one decoder thread: every frame decoded; unsampled non-reference frames
    skipped; skipped plus the resize of the sampled frames (a worker's job, less the transfer)."""
    fps = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker
    for case in ("every", "skip", "resize"):
        start, frames = time.perf_counter(), 0
        for path in videos:
            chunks = decode_snippets(
                path, job.frames_per_snippet, job.offsets, job.snippets_per_chunk, 1, case != "every"
            )
            for item in chunks:
                if isinstance(item, VideoInfo):
                    frames += item.frames
                elif case == "resize":
                    for frame in item:
                        resize_rgb(frame, job.plan)
        fps[case] = frames / (time.perf_counter() - start)
    torch.set_num_threads(threads)
    return fps


def bench_one_process(videos: list[Path], job: DecodeJob) -> None:
    """The same decoding here and in a process forked like the decode workers (is a worker slower?)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["cplvad.extract.pool"])  # as the pool does, before the server starts
    with ProcessPoolExecutor(1, mp_context=ctx) as child:
        forked = child.submit(one_process_fps, videos, job).result()
    for where, fps in (("this process", one_process_fps(videos, job)), ("a forked worker", forked)):
        print(
            f"decode in {where}: every frame {fps['every']:,.0f} frames/s; unsampled non-reference frames "
            f"skipped {fps['skip']:,.0f} ({fps['skip'] / fps['every']:.2f}x); skipped + resize of the sampled "
            f"frames {fps['resize']:,.0f}"
        )


def bench_resize_placement(videos: list[Path], job: DecodeJob, workers: int, pixels: int) -> None:
    """Decode alone with every frame resized in the workers vs sent as decoded (resized by the encoder)."""
    fps = {}
    for raw in (0, pixels):
        secs, warm, frames, _ = bench_decode(
            videos, dataclasses.replace(job, device_resize_pixels=raw), workers
        )
        fps[raw] = frames / (secs - warm)
    print(
        f"decode alone, {workers:2d} workers: frames resized in the workers {fps[0]:10,.0f} frames/s; sent as "
        f"decoded {fps[pixels]:10,.0f} frames/s ({fps[pixels] / fps[0]:.2f}x)"
    )


def bench_encode(encoder: BatchEncoder, seconds: float) -> tuple[float, int]:
    """(seconds, images) of full batches on ready-made uint8 frames."""
    h, w = encoder.plan.frame_size
    pin = encoder.device.type == "cuda"
    batch = torch.randint(0, 256, (encoder.frames_per_batch, 3, h, w), dtype=torch.uint8)
    batch = batch.pin_memory() if pin else batch

    def sync() -> None:
        if pin:
            torch.cuda.synchronize(encoder.device)

    for _ in range(3):  # warm-up (cuDNN/cuBLAS autotuning, allocator)
        encoder.add(0, batch)
    sync()
    start, n, batches = time.perf_counter(), 0, 0
    while time.perf_counter() - start < seconds:
        for out in encoder.add(0, batch):
            n += len(out) * encoder.plan.crops
        batches += 1
        if batches % 20 == 0:  # bound the queue of launched work
            sync()
    sync()
    return time.perf_counter() - start, n


BATCHING_VIDEOS = 12


def ucf_like_snippets(n: int, mean: int = 450) -> list[int]:
    """Snippets per video, lognormal around UCF-Crime's ~4 minutes of 30 fps video (``mean`` snippets)."""
    rng = np.random.default_rng(0)
    return np.clip(rng.lognormal(np.log(mean) - 0.5, 1.0, n), 4, 20 * mean).astype(int).tolist()


def bench_batching(encoder: BatchEncoder, per_video: list[int], repeats: int = 15) -> tuple[float, float]:
    """Images/s of encoding videos of ``per_video`` sampled frames in batches of each video's own frames (what
    extraction does, so a resumed run equals an uninterrupted one) and in full batches shared by consecutive
    videos (what it did before). Alternated ``repeats`` times, the median of each: short passes, so that a
    shared machine's changing load hits both alike."""
    h, w = encoder.plan.frame_size
    frames = torch.randint(0, 256, (max(per_video), 3, h, w), dtype=torch.uint8)
    batch = encoder.frames_per_batch

    def sync() -> None:
        if encoder.device.type == "cuda":
            torch.cuda.synchronize(encoder.device)

    def own_batches() -> None:
        for key, n in enumerate(per_video):
            for start in range(0, n, batch):
                encoder.add(key, frames[start : min(n, start + batch)])
            encoder.finish(key)

    def shared_batches() -> None:
        total = sum(per_video)
        for start in range(0, total, batch):
            encoder.encode(frames[: min(batch, total - start)])

    images = sum(per_video) * encoder.plan.views
    rates: dict = {own_batches: [], shared_batches: []}
    for _ in range(repeats):
        for fn, measured in rates.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            measured.append(images / (time.perf_counter() - start))
    return float(np.median(rates[own_batches])), float(np.median(rates[shared_batches]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument(
        "--clip-model", default=None, help="default: cplvad-tiny on CPU, ViT-B-16-quickgelu on CUDA"
    )
    ap.add_argument("--videos", type=int, default=None, help="default: 12 on CPU, 256 on CUDA")
    ap.add_argument(
        "--unique", type=int, default=None, help="distinct videos generated (default: --workers, max 16)"
    )
    ap.add_argument(
        "--frames", type=int, default=None, help="frames per video (default: 960 on CPU, 3000 on CUDA)"
    )
    ap.add_argument("--size", default="320x240", help="WxH of the generated videos")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--batch-size", type=int, default=None, help="images per forward pass (64 CPU, 256 CUDA)")
    ap.add_argument("--sampling", default="center")
    ap.add_argument("--crops", type=int, default=1, choices=[1, 10])
    ap.add_argument("--encode-seconds", type=float, default=10.0)
    ap.add_argument(
        "--workers-sweep",
        default="",
        help="comma-separated worker counts: decode alone for each first (how decoding scales with cores)",
    )
    args = ap.parse_args()

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    model = args.clip_model or ("ViT-B-16-quickgelu" if gpu else "cplvad-tiny")
    n_videos = args.videos or (256 if gpu else 12)
    frames = args.frames or (3000 if gpu else 960)
    width, height = (int(x) for x in args.size.lower().split("x"))
    cfg = Config.model_validate(
        {
            "clip": {"model": model, "pretrained": "none"},
            "extract": {
                "device": device.type,
                "workers": args.workers,
                "batch_size": args.batch_size or (256 if gpu else 64),
                "sampling": args.sampling,
                "crops": args.crops,
            },
        }
    )
    card = (
        torch.cuda.get_device_name(device)
        if gpu
        else f"CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"
    )
    print(f"device: {card}; torch {torch.__version__}; python {sys.version.split()[0]}")
    print(
        f"model: {model} (random weights, {'fp16 autocast' if gpu else 'fp32'}); batch {cfg.extract.batch_size} images; "
        f"{cfg.extract.workers} decode workers; sampling {cfg.extract.sampling}; crops {cfg.extract.crops}"
    )

    with tempfile.TemporaryDirectory(prefix="cplvad-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        folder = make_videos(
            root, n_videos, args.unique or min(args.workers, 16), frames, width, height, args.workers
        )
        videos = sorted(folder.iterdir())
        print(
            f"videos: {n_videos} x {frames} frames at {width}x{height} ({args.unique or min(args.workers, 16)} distinct), "
            f"generated in {time.perf_counter() - t0:.1f} s"
        )

        bundle, _ = load_clip(cfg, device)
        plan = CropPlan(cfg.extract.crops, bundle.image_size)
        offsets = sample_offsets(cfg.extract.sampling, cfg.extract.frames_per_snippet)
        encoder = BatchEncoder(bundle, plan, device, cfg.extract.batch_size)
        per_frame = len(offsets) * plan.crops / cfg.extract.frames_per_snippet  # images per video frame

        job = decode_job(
            cfg.extract.frames_per_snippet, offsets, plan, encoder.frames_per_batch, resize_on_device=gpu
        )
        bench_one_process(videos[:4], job)
        for n in [int(w) for w in args.workers_sweep.split(",") if w]:
            bench_resize_placement(videos[: 4 * n], job, n, width * height)
        secs, warm, dec_frames, _ = bench_decode(videos, job, args.workers)
        dec_fps = dec_frames / (secs - warm)
        print(
            f"decode alone : {dec_fps:12,.0f} frames/s  ({dec_fps * per_frame:10,.0f} images/s)  "
            f"[{dec_frames:,} frames in {secs:.1f} s, {warm:.1f} s worker start-up excluded]"
        )

        secs, images = bench_encode(encoder, args.encode_seconds)
        enc_ips = images / secs
        print(
            f"encode alone : {enc_ips / per_frame:12,.0f} frames/s  ({enc_ips:10,.0f} images/s)  "
            f"[{images:,} images in {secs:.1f} s]"
        )

        snippets = ucf_like_snippets(BATCHING_VIDEOS)
        own, shared = bench_batching(encoder, [t * len(offsets) for t in snippets])
        print(
            f"encode, {BATCHING_VIDEOS} videos of UCF-Crime-like lengths ({int(np.mean(snippets))} snippets on "
            f"average): batches of one video {own:,.0f} images/s, full batches shared by videos {shared:,.0f} "
            f"images/s ({own / shared:.3f}x)"
        )

        report = extract(str(folder), str(root / "features"), cfg, progress=False, log=lambda _: None)
        if report.failed:
            raise RuntimeError(f"end-to-end run failed: {report.failed}")
        steady = report.seconds - report.warmup_seconds
        e2e_fps = report.frames / steady
        print(
            f"end to end   : {e2e_fps:12,.0f} frames/s  ({report.images / steady:10,.0f} images/s)  "
            f"[{report.frames:,} frames in {report.seconds:.1f} s, {report.warmup_seconds:.1f} s worker start-up "
            f"excluded; {report.frames / report.seconds:,.0f} frames/s including it]"
        )
        ratio = (report.images / steady) / enc_ips
        print(
            f"end-to-end / slower stage: {e2e_fps / min(dec_fps, enc_ips / per_frame):.2f} (pipeline efficiency)"
        )
        if gpu:
            verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
            print(f"end-to-end / encode-alone: {ratio:.2f} (GPU target >= {TARGET_RATIO:.2f}: {verdict})")
        else:
            print(
                f"end-to-end / encode-alone: {ratio:.2f} (the >= {TARGET_RATIO:.2f} target applies on a GPU)"
            )


if __name__ == "__main__":
    main()
