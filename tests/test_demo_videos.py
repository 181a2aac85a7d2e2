"""Synthetic demo videos: deterministic, annotated, and usable from raw video to ground truth."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from cplvad.cli import cli
from cplvad.config import DemoConfig
from cplvad.data import load_dataset, read_annotations
from cplvad.extract.demo_videos import FPS, HEIGHT, WIDTH, write_demo_videos

SMALL = DemoConfig(seed=3, train_normal=2, train_abnormal=3, test_normal=2, test_abnormal=3)
SMALL_SET = [f"demo.{k}={v}" for k, v in SMALL.model_dump().items()]


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and ".cplvad" not in p.parts  # cplvad's bookkeeping (ownership, lock), not output
    }


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-videos")
    res = CliRunner().invoke(
        cli, ["demo-videos", "--out", str(out), *sum((["--set", s] for s in SMALL_SET), [])]
    )
    assert res.exit_code == 0, res.output
    assert "cplvad extract --videos" in res.output
    return out


def test_layout_lists_and_annotations(demo):
    train = (demo / "train_videos.csv").read_text().splitlines()
    test = (demo / "test_videos.csv").read_text().splitlines()
    assert train[0] == test[0] == "path,label" and len(train) == 1 + 5 and len(test) == 1 + 5
    assert {line.split(",")[1] for line in train[1:]} == {"Normal", "Flash", "Collision", "Erratic"}
    for line in train[1:] + test[1:]:
        path, label = line.split(",")
        assert path.startswith(("videos/train/", "videos/test/")) and f"/{label}/" in path
        frames = _frames(demo / path)
        assert frames.shape[1:] == (HEIGHT, WIDTH, 3) and 8 * FPS <= len(frames) < 20 * FPS
    ann = read_annotations(demo / "annotations.txt", "ucf")
    assert set(ann) == {line.split(",")[0].rsplit("/", 1)[1][:-4] for line in test[1:]}
    assert max(len(s) for s in ann.values()) == 2, "some abnormal videos have two anomalies"
    assert all(not segs for name, segs in ann.items() if name.startswith("Normal"))


def test_same_seed_same_bytes_other_seed_other_videos(demo, tmp_path):
    write_demo_videos(tmp_path / "again", SMALL)
    assert _digests(tmp_path / "again") == _digests(demo)
    write_demo_videos(tmp_path / "other", SMALL.model_copy(update={"seed": 4}))
    assert (
        _digests(tmp_path / "other")["videos/train/Normal/Normal001.mp4"]
        != _digests(demo)["videos/train/Normal/Normal001.mp4"]
    )


def test_anomalies_are_visible_in_the_pixels(demo):
    ann = read_annotations(demo / "annotations.txt", "ucf")
    flash = next(n for n in ann if n.startswith("Flash"))
    frames = _frames(demo / "videos" / "test" / "Flash" / f"{flash}.mp4").astype(np.float32)
    inside = np.zeros(len(frames), bool)
    for seg in ann[flash]:
        inside[seg.start : seg.end] = True
    assert frames[inside].mean() > frames[~inside].mean() + 60
    collision = next(n for n in ann if n.startswith("Collision"))
    frames = _frames(demo / "videos" / "test" / "Collision" / f"{collision}.mp4").astype(np.float32)
    orange = (np.abs(frames - np.array([255, 140, 0])).max(axis=-1) < 50).sum(axis=(1, 2))
    seg = ann[collision][0]
    assert orange[seg.start + 2 : seg.start + 10].mean() > 5 * (orange[: seg.start].mean() + 1)


def test_extracted_demo_loads_as_a_dataset_with_ground_truth(demo):
    runner = CliRunner()
    for split in ("train", "test"):
        args = [
            "extract",
            "--videos",
            str(demo / f"{split}_videos.csv"),
            "--out",
            str(demo / "features"),
            "--list-name",
            f"{split}.csv",
        ]
        res = runner.invoke(cli, [*args, "--clip-model", "cplvad-tiny", "--device", "cpu", "--workers", "0"])
        assert res.exit_code == 0, res.output
    ds = load_dataset(demo / "dataset.yaml")
    info = ds.describe()
    assert (
        info["train_videos"] == 5
        and info["test_videos"] == 5
        and info["classes"] == ["Normal", "Flash", "Collision", "Erratic"]
    )
    lengths = ds.test_lengths_from_features()
    gt = ds.frame_ground_truth(lengths)
    assert len(gt) == 16 * lengths.sum()
    annotated = sum(s.end - s.start for segs in ds.annotations.values() for s in segs)
    assert gt.sum() == annotated  # every annotated frame lies inside the T * 16 evaluated frames
    segments = ds.segment_ground_truth(lengths)
    assert len(segments) == 5
