"""A small synthetic feature-level dataset in the layout of the real releases (for the demo and tests).

Snippet features are built from random (nearly orthogonal) prototype directions: a scene per video with
slow drift and noise; anomalies add their class direction over annotated frame ranges (with soft
edges); "hard normal events" add a distractor direction partly aligned with an anomaly class, so a
detector has to tell them apart. Lists carry absolute paths of an imaginary publisher's machine, as the
published lists do, and the manifest rebases them with ``features_root``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from cplvad.config import DemoConfig
from cplvad.data.dataset import feature_list_csv
from cplvad.io import save_npy, write_text
from cplvad.storage.atomic import atomic_dir

DEMO_CLASSES = ("Normal", "Fighting", "Explosion", "RoadAccidents", "Stealing")
FEATURE_DIM = 512
FRAMES_PER_SNIPPET = 16
TRAIN_CROPS = 2
PUBLISHER_ROOT = "/home/publisher/DemoClipFeatures"
NOISE_STD = 0.06
"""Per-dimension snippet noise; the class directions are unit vectors (about 0.044 per dimension)."""


@dataclass(frozen=True)
class DemoVideo:
    name: str
    folder: str
    label: str
    n_snippets: int
    segments: tuple[tuple[int, int], ...]
    """Anomalous frame ranges [start, end)."""


class _Prototypes:
    def __init__(self, rng: np.random.Generator, dim: int) -> None:
        def unit(n: int) -> np.ndarray:
            v = rng.standard_normal((n, dim))
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        self.scenes = unit(8)
        self.classes = unit(len(DEMO_CLASSES))
        self.distractors = unit(3)
        self.drift_basis = unit(16)


def _plan_videos(rng: np.random.Generator, cfg: DemoConfig, split: str) -> list[DemoVideo]:
    n_normal = cfg.train_normal if split == "train" else cfg.test_normal
    n_abnormal = cfg.train_abnormal if split == "train" else cfg.test_abnormal
    videos: list[DemoVideo] = []
    folder_normal = "Training_Normal_Videos" if split == "train" else "Testing_Normal_Videos"
    offset = 0 if split == "train" else 500
    for i in range(n_abnormal):
        cls = DEMO_CLASSES[1 + i % (len(DEMO_CLASSES) - 1)]
        n_seg = 2 if i % 3 == 1 else 1
        t = int(rng.integers(64 * n_seg, 360))
        segments = []
        part = t // n_seg
        for k in range(n_seg):
            # one anomaly inside each part of the video, away from the part's edges
            length = int(rng.integers(6, max(7, part // 3)))
            s = k * part + int(rng.integers(2, part - length - 2))
            segments.append(
                (s * FRAMES_PER_SNIPPET + int(rng.integers(0, 8)), (s + length) * FRAMES_PER_SNIPPET)
            )
        videos.append(DemoVideo(f"{cls}{offset + i + 1:03d}_demo", cls, cls, t, tuple(segments)))
    for i in range(n_normal):
        t = int(rng.integers(48, 360))
        videos.append(DemoVideo(f"Normal_Videos_{offset + i + 1:03d}_demo", folder_normal, "Normal", t, ()))
    return videos


def _render(video: DemoVideo, protos: _Prototypes, rng: np.random.Generator) -> np.ndarray:
    t, dim = video.n_snippets, protos.scenes.shape[1]
    scene = protos.scenes[rng.integers(len(protos.scenes))]
    # slow drift: a random walk in a small subspace, smoothed
    walk = np.cumsum(rng.standard_normal((t, protos.drift_basis.shape[0])) * 0.15, axis=0)
    walk -= walk.mean(axis=0)
    feats = scene[None, :] + 0.25 * np.tanh(walk) @ protos.drift_basis
    feats += NOISE_STD * rng.standard_normal((t, dim))
    frames = np.arange(t * FRAMES_PER_SNIPPET)
    if video.segments:
        cls = DEMO_CLASSES.index(video.label)
        active = np.zeros(t * FRAMES_PER_SNIPPET)
        for s, e in video.segments:
            active[(frames >= s) & (frames < e)] = 1.0
        strength = active.reshape(t, FRAMES_PER_SNIPPET).mean(axis=1) * rng.uniform(0.7, 1.1)
        feats += strength[:, None] * protos.classes[cls][None, :]
    # hard normal events: a distractor partly aligned with an anomaly class, in 40 % of videos
    if rng.random() < 0.4:
        length = int(rng.integers(4, 12))
        start = int(rng.integers(0, max(1, t - length)))
        look_alike = protos.classes[1 + rng.integers(len(DEMO_CLASSES) - 1)]
        event = 0.6 * protos.distractors[rng.integers(len(protos.distractors))] + 0.3 * look_alike
        feats[start : start + length] += event[None, :]
    return feats.astype(np.float32)


def ucf_annotation_line(video: DemoVideo) -> str:
    pairs = list(video.segments) + [(-1, -1)] * max(0, 2 - len(video.segments))
    fields = [video.name, video.label] + [str(x) for pair in pairs for x in pair]
    return "  ".join(fields) + "  "


def write_demo_dataset(out: str | Path, cfg: DemoConfig | None = None) -> Path:
    """Write the demo dataset into ``out`` (atomically) and return the path of its ``dataset.yaml``."""
    cfg = cfg or DemoConfig()
    rng = np.random.default_rng(cfg.seed)
    protos = _Prototypes(rng, FEATURE_DIM)
    train, test = _plan_videos(rng, cfg, "train"), _plan_videos(rng, cfg, "test")
    out = Path(out)
    with atomic_dir(out) as tmp:
        rows: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
        for split, videos in (("train", train), ("test", test)):
            crops = range(TRAIN_CROPS) if split == "train" else range(1)
            for video in videos:
                base = _render(video, protos, rng)
                for k in crops:
                    crop = base + 0.05 * rng.standard_normal(base.shape).astype(np.float32) if k else base
                    rel = f"{video.folder}/{video.name}__{k}.npy"
                    save_npy(tmp / "features" / rel, crop.astype(np.float32))
                    rows[split].append((f"{PUBLISHER_ROOT}/{rel}", video.label))
        write_text(tmp / "lists" / "demo_train.csv", feature_list_csv(rows["train"]))
        write_text(tmp / "lists" / "demo_test.csv", feature_list_csv(rows["test"]))
        write_text(
            tmp / "annotations" / "Temporal_Anomaly_Annotation.txt",
            "\n".join(ucf_annotation_line(v) for v in test) + "\n",
        )
        manifest = {
            "name": "cplvad-demo",
            "classes": list(DEMO_CLASSES),
            "train_list": "lists/demo_train.csv",
            "test_list": "lists/demo_test.csv",
            "annotations": "annotations/Temporal_Anomaly_Annotation.txt",
            "annotations_format": "ucf",
            "features_root": "features",
            "frames_per_snippet": FRAMES_PER_SNIPPET,
        }
        header = (
            f"# Synthetic CPL-VAD demo dataset (cplvad demo-data, seed {cfg.seed}); the format is described in "
            "cplvad's docs/architecture.md#data-contract.\n"
        )
        write_text(tmp / "dataset.yaml", header + yaml.safe_dump(manifest, sort_keys=False))
    return out / "dataset.yaml"
