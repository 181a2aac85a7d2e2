"""Training and inference throughput of the CPL-VAD model, and peak memory.

    python benchmarks/bench_train.py                       # CPU: a few steps of the paper-sized model
    python benchmarks/bench_train.py --ucf-scale --device cuda
        # a full two-stage run at UCF-Crime scale: 1,610 videos x 192 snippets x 512-d, ViT-B/16-sized
        # text encoder (random weights), 20 epochs per stage, batch 32 (target: < 60 s on one H100)
    python benchmarks/bench_train.py --ucf-scale --device cuda --profile
        # first: FLOPs of one step, and the operators that take the time in 10 eager steps

Synthetic features stand in for real ones (the speed does not depend on their values).
"""

from __future__ import annotations

import argparse
import importlib
import resource
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from cplvad.config import Config, load_config
from cplvad.data.benchmarks import load_benchmark
from cplvad.data.training_set import TrainingSet
from cplvad.device import resolve_device
from cplvad.eval.scoring import score_videos
from cplvad.modeling.factory import create_model, load_model
from cplvad.pseudo.labels import generate
from cplvad.train.trainer import train

UCF_CLASSES = list(load_benchmark("ucf-crime").classes)
REPO = Path(__file__).resolve().parents[1]


def synthetic_training_set(videos: int, n: int, dim: int, classes: int, seed: int = 0) -> TrainingSet:
    g = torch.Generator().manual_seed(seed)
    abnormal = torch.arange(videos) % 2 == 1
    labels = torch.zeros(videos, classes)
    labels[~abnormal, 0] = 1
    labels[abnormal, 1 + torch.arange(int(abnormal.sum())) % (classes - 1)] = 1
    return TrainingSet(
        features=torch.randn(videos, n, dim, generator=g),
        lengths=torch.randint(n // 2, n + 1, (videos,), generator=g),
        labels=labels,
        abnormal=abnormal,
        keys=[f"v{i}__0" for i in range(videos)],
    )


def profile_steps(config: Config, data: TrainingSet, steps: int = 10) -> None:
    """FLOPs of one training step, and where the time of ``steps`` eager steps (no CUDA graph) goes."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    device = resolve_device(config.train.device)
    n = min(len(data), steps * config.train.batch_size)
    steps = -(-n // config.train.batch_size)
    sub = TrainingSet(data.features[:n], data.lengths[:n], data.labels[:n], data.abnormal[:n], data.keys[:n])
    eager = config.model_copy(
        update={"train": config.train.model_copy(update={"epochs": 1, "cuda_graphs": False})}
    )
    with tempfile.TemporaryDirectory() as tmp:
        train(
            eager, sub, Path(tmp) / "warm", stage=1, classes=UCF_CLASSES, progress=False
        )  # allocator, lazy kernel loading
        with FlopCounterMode(display=False) as flops:
            train(
                eager.model_copy(update={"train": eager.train.model_copy(update={"batch_size": len(sub)})}),
                sub,
                Path(tmp) / "flops",
                stage=1,
                classes=UCF_CLASSES,
                progress=False,
            )
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities, record_shapes=True) as prof:
            result = train(eager, sub, Path(tmp) / "prof", stage=1, classes=UCF_CLASSES, progress=False)
    step_flops = flops.get_total_flops() * config.train.batch_size / len(sub)
    print(
        f"one training step (batch {config.train.batch_size}): {step_flops / 1e9:,.0f} GFLOP forward + backward; "
        f"{steps} eager steps in {result.seconds:.2f} s under the profiler"
    )
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=20, max_name_column_width=60))
    print("the same by input shapes (which layer an operator belongs to):")
    print(
        prof.key_averages(group_by_input_shape=True).table(
            sort_by=key, row_limit=15, max_name_column_width=40, max_shapes_column_width=80
        )
    )


def bench_text_encoder(config: Config, device: torch.device, repeats: int = 5) -> None:
    """The C-branch text side of one step (forward + backward): every prompt run alone vs the class
    prefixes run once and shared by the levels, measured in this run."""
    model, _ = create_model(config, UCF_CLASSES, 512, stage=1)
    prompts = model.prompts.to(device).train()
    amp = config.train.amp and device.type == "cuda"
    seconds = {}
    for shared in (False, True):
        prompts.encoder.shares_prefixes = shared

        def step() -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext():
                text = prompts.encode()
            text.sum().backward()

        step()  # warm-up
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            step()
        synchronize(device)
        seconds[shared] = (time.perf_counter() - t0) / repeats
    t = prompts.tokens()
    levels, classes = prompts.levels, prompts.n_classes
    sp, ss = t.prefix.shape[1], t.suffix.shape[1]
    print(
        f"text encoder per step (forward + backward, {levels} levels x {classes} classes): every prompt alone "
        f"{levels * classes * (sp + ss)} tokens {seconds[False] * 1e3:.1f} ms; class prefixes shared "
        f"{classes * sp + levels * classes * ss} tokens {seconds[True] * 1e3:.1f} ms "
        f"({seconds[False] / seconds[True]:.2f}x)"
    )


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock times measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> str:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    text = f"peak host RSS {rss:.0f} MiB"
    if device.type == "cuda":
        text += f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
    return text


def bench_inference(model_dir: Path, device: torch.device, videos: int, length: int) -> float:
    model, config, _ = load_model(model_dir, device)
    rng = np.random.default_rng(0)
    feats = [
        (f"t{i}", rng.standard_normal((length, model.feature_dim)).astype(np.float32)) for i in range(videos)
    ]
    list(score_videos(model, feats[:2], device))  # warm-up
    synchronize(device)
    t0 = time.perf_counter()
    for _ in score_videos(model, feats, device, batch_size=64):
        pass
    synchronize(device)
    return videos * length / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--ucf-scale", action="store_true", help="full two-stage run, 1,610 videos, 20 epochs per stage"
    )
    ap.add_argument("--videos", type=int, default=64, help="training videos (ignored with --ucf-scale)")
    ap.add_argument(
        "--epochs", type=int, default=1, help="epochs (ignored with --ucf-scale; --set train.epochs=E)"
    )
    ap.add_argument(
        "--params",
        default=None,
        help="params file (default: configs/paper-ucf.yaml with --ucf-scale, else ./params.yaml)",
    )
    ap.add_argument("--profile", action="store_true", help="first profile 10 eager training steps")
    ap.add_argument(
        "--set", dest="overrides", action="append", default=[], help="config override section.key=value"
    )
    args = ap.parse_args()

    if args.ucf_scale:
        videos, scale = 1610, ["train.epochs=20", "train.batch_size=32"]
    else:
        videos, scale = args.videos, [f"train.epochs={args.epochs}"]
    overrides = [f"train.device={args.device}", "clip.pretrained=none", *scale, *args.overrides]  # --set wins
    params = args.params or (REPO / "configs" / "paper-ucf.yaml" if args.ucf_scale else None)
    config: Config = load_config(params, overrides)
    device = resolve_device(config.train.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"device: {name}; torch {torch.__version__}; python {sys.version.split()[0]}")
    print(
        f"model: width {config.model.width}, {config.model.levels} levels, n={config.model.max_len}, "
        f"CLIP {config.clip.model} (random weights); {videos} videos x {config.model.max_len} x 512, "
        f"batch {config.train.batch_size}, {config.train.epochs} epochs per stage"
    )

    t_import = time.perf_counter()
    # loaded on first use otherwise, i.e. inside stage 1's time (12.7 s on a fresh H100 machine, cold disk)
    importlib.import_module("open_clip")
    print(
        f"import open_clip: {time.perf_counter() - t_import:.1f} s (process start-up like torch's import, "
        "not counted in the run below)"
    )
    data = synthetic_training_set(videos, config.model.max_len, 512, len(UCF_CLASSES))
    if args.profile:
        profile_steps(config, data)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s1 = train(config, data, Path(tmp) / "s1", stage=1, classes=UCF_CLASSES, progress=False)
        t1 = time.perf_counter()
        model, _, _ = load_model(Path(tmp) / "s1", device)
        pseudo = generate(model, data, config.car, device, batch_size=256, progress=False)
        t2 = time.perf_counter()
        s2 = train(
            config, data, Path(tmp) / "s2", stage=2, classes=UCF_CLASSES, pseudo=pseudo, progress=False
        )
        t3 = time.perf_counter()
        steps = sum(1 for _ in range(0, videos, config.train.batch_size)) * config.train.epochs
        # videos/s count the training loop only (result.seconds); wall times include model set-up
        print(
            f"stage 1: {t1 - t0:7.1f} s wall, training {videos * config.train.epochs / s1.seconds:8.1f} videos/s "
            f"({steps} steps)"
        )
        print(f"pseudo : {t2 - t1:7.1f} s wall (model load + scoring + CAR of {videos} videos)")
        print(
            f"stage 2: {t3 - t2:7.1f} s wall, training {videos * config.train.epochs / s2.seconds:8.1f} videos/s"
        )
        print(
            f"total two-stage run: {t3 - t0:.1f} s; final losses {s1.history[-1]['loss']:.3f} / {s2.history[-1]['loss']:.3f}"
        )
        snippets = bench_inference(
            Path(tmp) / "s2", device, videos=64 if device.type == "cpu" else 512, length=1000
        )
        print(
            f"inference: {snippets:,.0f} snippets/s (videos of 1,000 snippets, chunks of {config.model.max_len})"
        )
    bench_text_encoder(config, device)  # after the run, whose wall times include CUDA's start-up as before
    print(peak_memory(device))


if __name__ == "__main__":
    main()
