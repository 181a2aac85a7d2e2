"""Small deterministic synthetic videos with frame-level annotations, so the whole job runs from raw video.

Normal scenes: a textured background under slowly drifting light with a few objects moving at constant
speed and bouncing off the walls. Hard normal events (in about 40 % of all videos): an object speeds up
for a moment, or the light dims and recovers. Anomalies (classes ``Flash``, ``Collision``, ``Erratic``),
one or two annotated segments per abnormal video:

- Flash: the picture flickers towards white;
- Collision: an object bursts into fragments that scatter;
- Erratic: one object jumps around at random and changes colour.

Layout of ``cplvad demo-videos --out DIR``: ``videos/{train,test}/<Class>/<name>.mp4``, the video lists
``train_videos.csv`` / ``test_videos.csv`` (``path,label``), ``annotations.txt`` (UCF format) and
``dataset.yaml``, whose lists are the ones that the extraction writes::

    cplvad extract --videos DIR/train_videos.csv --out DIR/features --list-name train.csv
    cplvad extract --videos DIR/test_videos.csv --out DIR/features --list-name test.csv
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import yaml

from cplvad.config import DemoConfig
from cplvad.data.dataset import feature_list_csv
from cplvad.data.demo import DemoVideo, ucf_annotation_line
from cplvad.io import write_text
from cplvad.storage.atomic import atomic_dir, atomic_path

CLASSES = ("Normal", "Flash", "Collision", "Erratic")
WIDTH, HEIGHT, FPS = 96, 72, 25
CAMERAS = 4
"""Fixed scenes (backgrounds) shared by all videos, as in surveillance where a few cameras film everything."""
FRAMES_PER_SNIPPET = 16
BITS_PER_PIXEL = 0.6
"""mpeg4 bit rate per pixel and frame: clean pictures for these simple scenes."""


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: int = FPS, codec: str = "mpeg4") -> int:
    """Encode RGB uint8 frames (H, W, 3), even H and W, into ``path`` atomically; return the frame count.

    ``mpeg4`` (in every FFmpeg build) gives byte-identical files for identical frames; the wheels' libx264
    does not (its output varied from run to run here), so it is used only where that does not matter.
    """
    path = Path(path)
    count = 0
    with atomic_path(path, suffix=path.suffix) as tmp, av.open(str(tmp), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "20"}
        for frame in frames:
            if not count:
                stream.height, stream.width = frame.shape[:2]
                stream.bit_rate = int(BITS_PER_PIXEL * frame.shape[0] * frame.shape[1] * fps)
                container.start_encoding()
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            count += 1
        container.mux(stream.encode())
    return count


@dataclass(frozen=True)
class VideoPlan:
    name: str
    label: str
    frames: int
    segments: tuple[tuple[int, int], ...]
    """Anomalous frame ranges [start, end)."""
    seed: int


def render(plan: VideoPlan, width: int = WIDTH, height: int = HEIGHT) -> Iterator[np.ndarray]:
    """The frames of one video (deterministic for ``plan``)."""
    rng = np.random.default_rng(plan.seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    scene = np.random.default_rng([CAMERAS, plan.seed % CAMERAS])  # the camera: same for every video it films
    base = scene.uniform(40, 150, 3).astype(np.float32)
    gradient = (xx / width)[..., None] * scene.uniform(-40, 40, 3) + (yy / height)[..., None] * scene.uniform(
        -40, 40, 3
    )
    background = base + gradient + rng.normal(0, 6, (height, width, 3))
    scale = width / WIDTH
    n_obj = int(rng.integers(2, 5))
    pos = rng.uniform([8 * scale, 8 * scale], [width - 8 * scale, height - 8 * scale], (n_obj, 2))
    vel = rng.uniform(0.5, 1.5, (n_obj, 2)) * rng.choice([-1, 1], (n_obj, 2)) * scale
    radius = rng.uniform(3, 7, n_obj) * scale
    colour = rng.uniform(0, 255, (n_obj, 3))
    alive = np.ones(n_obj, bool)
    light_period = rng.uniform(150, 400)
    hard = _hard_normal_event(rng, plan.frames) if rng.random() < 0.4 else None
    fragments: np.ndarray | None = None
    for f in range(plan.frames):
        active = next((seg for seg in plan.segments if seg[0] <= f < seg[1]), None)
        light = 1.0 + 0.12 * np.sin(2 * np.pi * f / light_period)
        speed = np.ones(n_obj)
        if hard is not None and hard[1] <= f < hard[2]:
            if hard[0] == "dim":
                light *= 0.75
            else:
                speed[0] = 3.0
        if active is not None and plan.label == "Erratic":  # a large object jumping around, flickering
            pos[0] += rng.normal(0, 6 * scale, 2)
            colour[0] = rng.uniform(0, 255, 3)
            radius_now = radius.copy()
            radius_now[0] = 4 * radius[0]
        else:
            radius_now = radius
        if active is not None and plan.label == "Collision" and f == active[0]:
            fragments = _collide(rng, pos, alive, scale)
        pos += vel * speed[:, None]
        for axis, size in ((0, width), (1, height)):  # bounce off the walls
            out = (pos[:, axis] < 0) | (pos[:, axis] > size - 1)
            vel[out, axis] *= -1
            pos[:, axis] = np.clip(pos[:, axis], 0, size - 1)
        img = background * light
        for i in np.flatnonzero(alive):
            img[(xx - pos[i, 0]) ** 2 + (yy - pos[i, 1]) ** 2 <= radius_now[i] ** 2] = colour[i]
        if fragments is not None:
            if active is None:
                fragments = None
            else:  # a fireball that grows and fades, and fragments flying away
                age = f - active[0]
                burst = (6 + 1.2 * age) * scale
                cx, cy = fragments[0, 4:6]
                ball = (xx - cx) ** 2 + (yy - cy) ** 2 <= burst**2
                img[ball] = img[ball] * 0.2 + np.array([255.0, 90.0, 0.0]) * 0.8
                fragments[:, :2] += fragments[:, 2:4]
                for x, y in fragments[:, :2]:
                    img[(xx - x) ** 2 + (yy - y) ** 2 <= (1.5 * scale) ** 2] = (255, 140, 0)
        if active is not None and plan.label == "Flash":
            a = rng.uniform(0.5, 0.9)
            img = img * (1 - a) + 255 * a
        yield np.clip(img, 0, 255).astype(np.uint8)


def _hard_normal_event(rng: np.random.Generator, frames: int) -> tuple[str, int, int]:
    length = min(int(rng.integers(25, 60)), frames // 2)
    start = int(rng.integers(0, frames - length + 1))
    return ("dim" if rng.random() < 0.5 else "fast", start, start + length)


def _collide(rng: np.random.Generator, pos: np.ndarray, alive: np.ndarray, scale: float) -> np.ndarray:
    """An object bursts: remove it and return fragments (x, y, vx, vy, x0, y0) flying away from (x0, y0)."""
    i = int(np.argmax(alive))  # the first one still there (object 0 when none is)
    alive[i] = False
    n = 14
    angle = rng.uniform(0, 2 * np.pi, n)
    speed = rng.uniform(1.5, 3.5, n) * scale
    origin = np.repeat(pos[i : i + 1], n, axis=0)
    return np.column_stack([origin, np.cos(angle) * speed, np.sin(angle) * speed, origin])


def plan_videos(cfg: DemoConfig) -> dict[str, list[VideoPlan]]:
    """Names, labels, lengths and anomaly segments of every video, for both splits."""
    rng = np.random.default_rng(cfg.seed)
    plans: dict[str, list[VideoPlan]] = {}
    for split, n_normal, n_abnormal, first in (
        ("train", cfg.train_normal, cfg.train_abnormal, 1),
        ("test", cfg.test_normal, cfg.test_abnormal, 501),
    ):
        videos = []
        for i in range(n_abnormal):
            label = CLASSES[1 + i % (len(CLASSES) - 1)]
            frames = int(rng.integers(8 * FPS, 20 * FPS))
            n_seg = 2 if i % 3 == 2 else 1
            part = (frames // FRAMES_PER_SNIPPET * FRAMES_PER_SNIPPET) // n_seg
            segments = []
            for k in range(n_seg):  # one anomaly inside each part, away from the part's edges
                length = int(rng.integers(int(1.5 * FPS), min(4 * FPS, part // 2)))
                start = k * part + int(rng.integers(FRAMES_PER_SNIPPET, part - length - FRAMES_PER_SNIPPET))
                segments.append((start, start + length))
            videos.append(
                VideoPlan(f"{label}{first + i:03d}", label, frames, tuple(segments), _seed(cfg, split, i))
            )
        for i in range(n_normal):
            frames = int(rng.integers(8 * FPS, 20 * FPS))
            videos.append(
                VideoPlan(f"Normal{first + i:03d}", "Normal", frames, (), _seed(cfg, split, 1000 + i))
            )
        plans[split] = videos
    return plans


def _seed(cfg: DemoConfig, split: str, i: int) -> int:
    return int(np.random.SeedSequence([cfg.seed, split == "test", i]).generate_state(1)[0])


def write_demo_videos(out: str | Path, cfg: DemoConfig | None = None, features_dir: str = "features") -> Path:
    """Write the demo videos, lists, annotations and ``dataset.yaml`` into ``out`` (atomically, as a whole);
    return the manifest path. ``features_dir`` (relative to ``out``) is where the manifest expects the
    extracted feature lists ``train.csv`` and ``test.csv``."""
    cfg = cfg or DemoConfig()
    out = Path(out)
    plans = plan_videos(cfg)
    with atomic_dir(out) as tmp:
        for split, videos in plans.items():
            rows = []
            for v in videos:
                rel = f"videos/{split}/{v.label}/{v.name}.mp4"
                write_video(tmp / rel, render(v))
                rows.append((rel, v.label))
            write_text(tmp / f"{split}_videos.csv", feature_list_csv(rows))
        annotations = [
            DemoVideo(v.name, v.label, v.label, v.frames // FRAMES_PER_SNIPPET, v.segments)
            for v in plans["test"]
        ]
        write_text(tmp / "annotations.txt", "\n".join(ucf_annotation_line(v) for v in annotations) + "\n")
        manifest = {
            "name": "cplvad-demo-videos",
            "classes": list(CLASSES),
            "train_list": f"{features_dir}/train.csv",
            "test_list": f"{features_dir}/test.csv",
            "annotations": "annotations.txt",
            "annotations_format": "ucf",
            "frames_per_snippet": FRAMES_PER_SNIPPET,
        }
        header = (
            f"# Synthetic CPL-VAD demo videos (cplvad demo-videos, seed {cfg.seed}). The lists are written by:\n"
            f"#   cplvad extract --videos train_videos.csv --out {features_dir} --list-name train.csv\n"
            f"#   cplvad extract --videos test_videos.csv --out {features_dir} --list-name test.csv\n"
            "# (paths relative to this folder)\n"
        )
        write_text(tmp / "dataset.yaml", header + yaml.safe_dump(manifest, sort_keys=False))
    return out / "dataset.yaml"
