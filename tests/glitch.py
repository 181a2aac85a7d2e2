"""A tiny model trained on videos with a planted anomaly (a frame-wide checkerboard "Glitch", far from every
normal frame in the tiny CLIP's space), and the videos to score with it: shared by the prediction tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import tiny_cli_args, tiny_config

from cplvad.config import Config
from cplvad.extract.demo_videos import write_video
from cplvad.extract.options import ExtractOptions
from cplvad.extract.runner import extract

W, H, FPS = 48, 32, 25
PLANTED = (130, 190)
"""Frames of the anomaly in the probe video: snippets 8..11 (sampled frames 136, 152, 168, 184)."""
SETTINGS = ["train.epochs=80", "train.device=cpu", "extract.device=cpu", "extract.batch_size=16"]
"""The tiny settings, trained long enough to find the planted anomaly, on the CPU."""
CLI = ["--workers", "0", "--device", "cpu"]
SETS = tiny_cli_args(*SETTINGS)


def config(*extra: str) -> Config:
    return tiny_config(*SETTINGS, *extra)


def scene(frames: int, seed: int, anomalies: tuple[tuple[int, int], ...] = ()):
    """A camera (background) and a moving square; anomalous frames are a checkerboard."""
    rng = np.random.default_rng(seed)
    camera = np.random.default_rng(seed // 2 % 2)  # two cameras, each filming normal and abnormal videos
    yy, xx = np.mgrid[0:H, 0:W]
    background = camera.uniform(30, 200, 3) + camera.normal(0, 15, (H, W, 3))
    glitch = (((xx // 4 + yy // 4) % 2)[..., None] * 255).repeat(3, 2).astype(np.uint8)
    colour, speed, start = rng.uniform(0, 255, 3), rng.uniform(0.5, 1.5, 2), rng.uniform(0, [W, H])
    for f in range(frames):
        if any(s <= f < e for s, e in anomalies):
            yield glitch
            continue
        x, y = (start + speed * f) % [W, H]
        img = background.copy()
        img[(np.abs(xx - x) < 5) & (np.abs(yy - y) < 5)] = colour
        yield np.clip(img, 0, 255).astype(np.uint8)


def make_video(path: Path, frames: int, seed: int, anomalies: tuple[tuple[int, int], ...] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, scene(frames, seed, anomalies), fps=FPS)
    return path


def train_glitch_model(root: Path) -> Path:
    from cplvad.workflow import train_stage

    rng = np.random.default_rng(0)
    for i in range(16):
        frames = int(rng.integers(12, 20)) * 16
        anomalies: tuple[tuple[int, int], ...] = ()
        if i % 2 == 0:  # anomalies spread over the videos, 40-72 frames long
            s = 16 + int((frames - 120) * ((i // 2 * 0.37) % 1))
            anomalies = ((s, s + int(rng.integers(40, 72))),)
        label = "Glitch" if anomalies else "Normal"
        make_video(root / "videos" / label / f"{label}{i:02d}.mp4", frames, 100 + i, anomalies)
    extract(
        str(root / "videos"),
        str(root / "features"),
        config(),
        ExtractOptions(list_name="train.csv"),
        progress=False,
        log=lambda _: None,
    )
    (root / "dataset.yaml").write_text(
        "name: glitch\nclasses: [Normal, Glitch]\ntrain_list: features/train.csv\ntest_list: features/train.csv\n"
    )
    train_stage(root / "dataset.yaml", root / "model", config(), stage=1, progress=False)
    return root / "model"
