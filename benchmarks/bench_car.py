"""CAR throughput: vectorised ``refine`` vs a per-video Python loop, both branches, n = 192, 6 levels,
for each rule (``car.rule``: simple; paper and release with the authors' UCF-Crime numbers). The loops:
``car_loop.py`` for simple and paper, the port of the authors' code (``tests/release_port.py``) for
release.

    python benchmarks/bench_car.py [--videos 4096] [--loop-videos 64] [--device cpu|cuda]

Prints videos/s of each, their ratio and the share of positive pseudo labels, measured in the same run on
the same inputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from car_loop import refine_loop

from cplvad.config import CarConfig
from cplvad.pseudo.rules import refine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from release_port import UCF, generate_gt  # noqa: E402


def synthetic_levels(videos: int, n: int, levels: int, seed: int = 0):
    """Smooth random scores (N, L, n) in the model's level layout, masks, valid lengths, video labels."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(n // 4, n + 1, size=videos)
    abnormal = rng.random(videos) < 0.5
    base = np.clip(np.cumsum(rng.normal(0, 0.1, (videos, n)), axis=1) * 0.3 + 0.4, 0, 1)
    scores = np.zeros((videos, levels, n), dtype=np.float32)
    masks = np.zeros((videos, levels, n), dtype=bool)
    for i in range(levels):
        t = n // 2**i
        scores[:, i, :t] = np.clip(base[:, :: 2**i][:, :t] + rng.normal(0, 0.05, (videos, t)), 0, 1)
        masks[:, i, :t] = np.arange(t)[None, :] < -(-lengths // 2**i)[:, None]
    return scores, masks, lengths, abnormal


def measure(rule: str, inputs: tuple, args: argparse.Namespace, device: torch.device) -> None:
    """Time both implementations of one rule on the same videos and check they agree."""
    cfg = CarConfig(rule=rule, keep_topk=rule == "simple")  # the authors' rule has no fallback
    scores, masks, lengths, abnormal = inputs
    t_scores = torch.from_numpy(scores).to(device)
    t_masks = torch.from_numpy(masks).to(device)
    t_abn = torch.from_numpy(abnormal).to(device)

    def both_branches() -> torch.Tensor:  # B and C branch scores have the same shapes; refine each once
        for _ in range(2):
            out = refine(t_scores, t_masks, t_abn, args.n, cfg)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    labels = both_branches()  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        both_branches()
        times.append(time.perf_counter() - t0)
    fast = args.videos / min(times)

    k = args.loop_videos
    t0 = time.perf_counter()
    for _ in range(2):
        ref = loop(scores[:k], lengths[:k], abnormal[:k], args.n, cfg)
    slow = k / (time.perf_counter() - t0)
    max_diff = float(np.abs(labels[:k].cpu().numpy() - ref).max())  # same answer on the shared videos
    positive = float((labels[t_abn] > 0).float().mean())

    print(
        f"{rule:8s} vectorised : {fast:10.0f} videos/s (both branches, n={args.n}, {args.levels} levels, "
        f"{args.videos} videos; {positive:.1%} of abnormal snippets positive)"
    )
    print(f"{rule:8s} Python loop: {slow:10.1f} videos/s (both branches, {k} videos)")
    print(f"{rule:8s} speed-up   : {fast / slow:10.0f}x   (max |difference| {max_diff:.2e})")


def loop(scores: np.ndarray, lengths: np.ndarray, abnormal: np.ndarray, n: int, cfg: CarConfig) -> np.ndarray:
    """The per-video reference of ``cfg.rule``."""
    if cfg.rule != "release":
        return refine_loop(scores, lengths, abnormal, n, cfg)
    out = np.zeros((len(lengths), n), dtype=np.float32)
    for v, length in enumerate(int(x) for x in lengths):
        if abnormal[v]:
            out[v, :length] = generate_gt(scores[v], length, UCF).labels
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=4096)
    ap.add_argument("--loop-videos", type=int, default=64)
    ap.add_argument("--n", type=int, default=192)
    ap.add_argument("--levels", type=int, default=6)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    device = torch.device(args.device)
    print(
        f"torch threads {torch.get_num_threads()}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    inputs = synthetic_levels(args.videos, args.n, args.levels)
    for rule in ("simple", "paper", "release"):
        measure(rule, inputs, args, device)


if __name__ == "__main__":
    main()
