"""Throughput of ``cplvad predict``: seconds of video scored per second of wall time (not a test; prints figures).

    .venv/bin/python benchmarks/bench_predict.py                 # CPU: cplvad-tiny CLIP, demo-sized model
    python benchmarks/bench_predict.py --device cuda --clip-model ViT-B-16-quickgelu
                                                                  # GPU: ViT-B/16 CLIP, paper-sized model

Builds a model directory with random weights and a fixed threshold (the speed does not depend on the
weights), generates UCF-like videos (synthetic moving scenes, H.264, 30 fps) in a temporary folder and
times, with one loaded model each:

- videos, batch: ``PredictRunner.run`` on all videos: decode workers + batched CLIP + batched temporal model
  + JSON reports (worker start-up included, and reported separately);
- features only: the same on the videos' ``.npy`` features (temporal model + events + JSON reports);
- stream: ``PredictRunner.stream`` on one long video (decode + encode + score chunk by chunk).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import make_videos  # noqa: E402

from cplvad.config import Config, load_config  # noqa: E402
from cplvad.data.benchmarks import load_benchmark  # noqa: E402
from cplvad.device import resolve_device  # noqa: E402
from cplvad.modeling.factory import CALIBRATION_KEY, create_model, save_model, update_meta  # noqa: E402
from cplvad.predict import Input, PredictOptions, PredictRunner, open_predictor  # noqa: E402

CLASSES = list(load_benchmark("ucf-crime").classes)
REPO = Path(__file__).resolve().parents[1]


def build_model(config: Config, out: Path, feature_dim: int) -> Path:
    model, meta = create_model(config, CLASSES, feature_dim, stage=2, dataset="bench")
    save_model(model, config, meta, out)
    update_meta(
        out,
        **{CALIBRATION_KEY: {"threshold": 0.5, "false_alarm_rate": 0.01, "normal_videos": 0, "snippets": 0}},
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument(
        "--clip-model", default=None, help="default: cplvad-tiny on CPU, ViT-B-16-quickgelu on CUDA"
    )
    ap.add_argument(
        "--model-size",
        default=None,
        choices=["demo", "paper"],
        help="temporal model: demo = params.yaml (width 128), paper = width 512 (default: demo on CPU, "
        "paper on CUDA)",
    )
    ap.add_argument("--videos", type=int, default=None, help="default: 8 on CPU, 64 on CUDA")
    ap.add_argument(
        "--frames", type=int, default=None, help="frames per video (default: 960 on CPU, 3000 on CUDA)"
    )
    ap.add_argument(
        "--stream-frames", type=int, default=None, help="frames of the streamed video (default 4 x --frames)"
    )
    ap.add_argument("--size", default="320x240", help="WxH of the generated videos")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument(
        "--batch-size", type=int, default=None, help="CLIP images per forward pass (64 CPU, 256 CUDA)"
    )
    ap.add_argument("--sampling", default="center")
    args = ap.parse_args()

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    clip_model = args.clip_model or ("ViT-B-16-quickgelu" if gpu else "cplvad-tiny")
    size = args.model_size or ("paper" if gpu else "demo")
    n_videos, frames = args.videos or (64 if gpu else 8), args.frames or (3000 if gpu else 960)
    stream_frames = args.stream_frames or 4 * frames
    width, height = (int(x) for x in args.size.lower().split("x"))
    overrides = [
        f"clip.model={clip_model}",
        "clip.pretrained=none",
        f"extract.sampling={args.sampling}",
        f"extract.workers={args.workers}",
        f"extract.batch_size={args.batch_size or (256 if gpu else 64)}",
        f"extract.device={device.type}",
        f"train.device={device.type}",
    ]
    base = REPO / "params.yaml" if size == "demo" else REPO / "configs" / "paper-ucf.yaml"
    config = load_config(base, overrides)
    card = (
        torch.cuda.get_device_name(device)
        if gpu
        else f"CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"
    )
    print(f"device: {card}; torch {torch.__version__}; python {sys.version.split()[0]}")
    m = config.model
    print(
        f"CLIP {clip_model} (random weights, {'fp16 autocast' if gpu else 'fp32'}), batch {config.extract.batch_size} "
        f"images, sampling {args.sampling}, {args.workers} decode workers; temporal model {size} (width {m.width}, "
        f"n {m.max_len}, {m.levels} levels), {len(CLASSES)} classes"
    )

    with tempfile.TemporaryDirectory(prefix="cplvad-bench-predict-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        folder = make_videos(
            root, n_videos, min(args.workers, 16, n_videos), frames, width, height, args.workers
        )
        long_dir = make_videos(root / "long", 1, 1, stream_frames, width, height, 1)
        print(
            f"videos: {n_videos} x {frames} frames at {width}x{height}, 30 fps ({n_videos * frames / 30:,.0f} s of "
            f"video) + one of {stream_frames} frames to stream; generated in {time.perf_counter() - t0:.1f} s"
        )

        from cplvad.clip import create_clip

        embed_dim = create_clip(config.clip).embed_dim
        model_dir = build_model(config, root / "model", embed_dim)
        predictor = open_predictor(model_dir, config, device)
        runner = PredictRunner(predictor, config, PredictOptions(out=root / "out"))
        t0 = time.perf_counter()
        runner.encoder  # noqa: B018  (CLIP built once, outside the timings)
        print(f"model + CLIP loaded in {time.perf_counter() - t0:.1f} s")

        videos = [Input(p, "video") for p in sorted(folder.iterdir())]
        done: list[float] = []
        start = time.perf_counter()
        results = runner.run(videos, on_result=lambda _: done.append(time.perf_counter() - start))
        secs = time.perf_counter() - start
        failed = [r.error for r in results if not r.ok]
        if failed:
            raise RuntimeError(f"scoring failed: {failed[:3]}")
        video_s = sum(r.video_seconds or 0 for r in results)
        print(
            f"videos, batch : {video_s / secs:10,.1f} video-s/s  ({sum(r.frames for r in results) / secs:10,.0f} "
            f"frames/s)  [{video_s:,.0f} s of video in {secs:.1f} s; first report after {done[0]:.1f} s]"
        )

        feats = root / "features"
        feats.mkdir()
        for k, item in runner.encoder.videos([str(v.path) for v in videos]):  # the same features, as files
            np.save(feats / f"{videos[k].name}.npy", item.features)
        items = [Input(p, "features") for p in sorted(feats.iterdir())]
        features_runner = PredictRunner(predictor, config, PredictOptions(out=root / "out", fps=30.0))
        start = time.perf_counter()
        results = features_runner.run(items)
        secs = time.perf_counter() - start
        video_s = sum(r.video_seconds or 0 for r in results)
        print(
            f"features only: {video_s / secs:10,.1f} video-s/s  [{len(items)} feature files, {video_s:,.0f} s of "
            f"video in {secs:.2f} s]"
        )

        long_video = next(long_dir.iterdir())
        start = time.perf_counter()
        [result] = runner.stream([Input(long_video, "video")])
        secs = time.perf_counter() - start
        if not result.ok:
            raise RuntimeError(result.error)
        print(
            f"stream       : {(result.video_seconds or 0) / secs:10,.1f} video-s/s  [{result.video_seconds:,.0f} s "
            f"of video in {secs:.1f} s; at most {runner.last_scorer.peak_pending} snippets of features held]"
        )


if __name__ == "__main__":
    main()
