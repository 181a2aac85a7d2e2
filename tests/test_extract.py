"""Feature extraction on small generated videos with the tiny random-weight CLIP (cplvad-tiny)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import open_clip
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cplvad
from cplvad.cli import cli
from cplvad.config import Config
from cplvad.data import load_dataset, open_features
from cplvad.errors import ConfigError, DataError
from cplvad.extract import video as video_module
from cplvad.extract.clip_encoder import BatchEncoder
from cplvad.extract.demo_videos import VideoPlan, render, write_video
from cplvad.extract.manifest import npy_size
from cplvad.extract.options import ExtractOptions
from cplvad.extract.pool import Chunk, decode_events, decode_job
from cplvad.extract.runner import extract, load_clip
from cplvad.extract.transforms import CropPlan, frames_tensor, resize_frames, ten_crops, to_model_input
from cplvad.extract.video import (
    VideoInfo,
    _presentation_order,
    _sampled_frames,
    decode_snippets,
    sample_offsets,
)

TINY = ["--clip-model", "cplvad-tiny", "--device", "cpu", "--batch-size", "16"]


def make_video(path: Path, frames: int, seed: int = 0, size: tuple[int, int] = (48, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, render(VideoPlan(path.stem, "x", frames, (), seed), *size))
    return path


def config(**extract) -> Config:
    return Config.model_validate(
        {
            "clip": {"model": "cplvad-tiny"},
            "extract": {"workers": 0, "device": "cpu", "batch_size": 16, **extract},
        }
    )


def run(src: Path | str, dst: Path | str, cfg: Config | None = None, **kw):
    return extract(
        str(src), str(dst), cfg or config(), ExtractOptions(**kw), progress=False, log=lambda _: None
    )


def decoded_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def manifest_of(dst: Path, stem: str = "features") -> dict:
    return json.loads((dst / f"{stem}.extraction.json").read_text())


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    """UCF layout: Class/video.mp4, plus one video directly in the root (default label)."""
    root = tmp_path / "videos"
    make_video(root / "Fighting" / "Fighting001.mp4", 50, seed=1)  # T = 3 (2 frames dropped)
    make_video(root / "Fighting" / "Fighting002.mp4", 16, seed=2)  # T = 1
    make_video(root / "Normal" / "Normal001.mp4", 40, seed=3)  # T = 2
    make_video(root / "loose.mp4", 33, seed=4)  # T = 2
    (root / "Normal" / "notes.txt").write_text("not a video, ignored by the folder scan\n")
    return root


# ------------------------------------------------------------------------------------------ transforms


def test_sample_offsets():
    assert sample_offsets("center", 16) == (8,)
    assert sample_offsets("mean:1", 16) == (8,)
    assert sample_offsets("mean:4", 16) == (2, 6, 10, 14)
    assert sample_offsets("mean:16", 16) == tuple(range(16))
    with pytest.raises(ConfigError, match="K <= 16"):
        sample_offsets("mean:17", 16)


@pytest.mark.parametrize("size", [32, 224])
def test_one_crop_matches_open_clip_preprocess(size):
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (30, 40, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # 320x240
    image = Image.fromarray(smooth)
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    reference = open_clip.image_transform(size, is_train=False, mean=mean, std=std)(image)
    plan = CropPlan(1, size)
    ours = to_model_input(resize_frames(frames_tensor(np.array(image)[None]), plan), plan, mean, std)[0]
    assert ours.shape == reference.shape == (3, size, size)
    diff = (ours - reference).abs()
    one_level = 1 / 255 / min(std)  # one uint8 step after normalisation
    assert diff.max() <= 2 * one_level + 1e-6
    assert diff.mean() < 0.2 * one_level


def test_ten_crop_geometry_and_order():
    plan = CropPlan(10, 32)
    assert plan.frame_size == (37, 49)  # 340x256 scaled by 32/224, (height, width)
    assert CropPlan(10, 224).frame_size == (256, 340)
    x = torch.arange(37 * 49, dtype=torch.float32).view(1, 1, 37, 49)
    crops = ten_crops(x, 32)[0, :, 0]
    assert crops.shape == (10, 32, 32)
    top, left = round((37 - 32) / 2), round((49 - 32) / 2)
    expected = [
        x[0, 0, top : top + 32, left : left + 32],
        x[0, 0, :32, :32],
        x[0, 0, :32, -32:],
        x[0, 0, -32:, :32],
        x[0, 0, -32:, -32:],
    ]
    for k, e in enumerate(expected):
        assert torch.equal(crops[k], e), f"crop {k}"
        assert torch.equal(crops[k + 5], e.flip(-1)), f"crop {k + 5}"


# --------------------------------------------------------------------------------------- extraction


def test_extract_folder_writes_features_list_and_manifest(videos, tmp_path):
    dst = tmp_path / "features"
    report = run(videos, dst)
    assert report.extracted == 4 and not report.failed and report.frames == 50 + 16 + 40 + 33
    expected = {
        "Fighting/Fighting001": 3,
        "Fighting/Fighting002": 1,
        "Normal/Normal001": 2,
        "Normal/loose": 2,
    }
    for stem, t in expected.items():
        arr = np.load(dst / f"{stem}__0.npy", allow_pickle=False)
        assert arr.shape == (t, 64) and arr.dtype == np.float32 and np.isfinite(arr).all()
    assert not list(dst.rglob("*tmp*")), "temporary files left behind"

    lines = (dst / "features.csv").read_text().splitlines()
    assert lines[0] == "path,label"
    assert lines[1:] == [
        "Fighting/Fighting001__0.npy,Fighting",
        "Fighting/Fighting002__0.npy,Fighting",
        "Normal/Normal001__0.npy,Normal",
        "Normal/loose__0.npy,Normal",
    ]
    m = manifest_of(dst)
    assert m["settings"] == {
        "clip_model": "cplvad-tiny",
        "weights": "random-init-seed-0",
        "sampling": "center",
        "crops": 1,
        "frames_per_snippet": 16,
        "image_size": 32,
        "embed_dim": 64,
    }
    assert m["summary"] == {"videos": 4, "ok": 4, "failed": 0}
    v = m["videos"]["Fighting001"]
    assert v["frames"] == 50 and v["snippets"] == 3 and v["fps"] == 25.0 and v["seconds"] >= 0
    assert v["source"] == str((videos / "Fighting" / "Fighting001.mp4").resolve())
    assert [e["index"] for e in m["videos"].values()] == [0, 1, 2, 3]

    # the list is a dataset list: relative paths resolve against its folder
    (tmp_path / "dataset.yaml").write_text(
        "name: t\nclasses: [Normal, Fighting]\ntrain_list: features/features.csv\ntest_list: features/features.csv\n"
    )
    ds = load_dataset(tmp_path / "dataset.yaml")
    assert ds.train.names == ["Fighting001", "Fighting002", "Normal001", "loose"]
    assert [open_features(p).shape[0] for p in ds.train.crop_paths(ds.train.videos[0])] == [3]


def test_features_equal_direct_encoding_of_sampled_frames(tmp_path):
    """Snippet t of mean:4 = mean of the embeddings of frames 16t + (2, 6, 10, 14), nothing else."""
    video = make_video(tmp_path / "v" / "Normal" / "a.mp4", 70, seed=5)
    cfg = config(sampling="mean:4")
    run(tmp_path / "v", tmp_path / "out", cfg)
    got = np.load(tmp_path / "out" / "Normal" / "a__0.npy")
    bundle, _ = load_clip(cfg, torch.device("cpu"))
    frames = decoded_frames(video)
    plan = CropPlan(1, 32)
    idx = [16 * t + o for t in range(4) for o in (2, 6, 10, 14)]
    with torch.no_grad():
        x = to_model_input(resize_frames(frames_tensor(frames[idx]), plan), plan, bundle.mean, bundle.std)
        want = bundle.model.encode_image(x).view(4, 4, -1).mean(1).numpy()
    assert got.shape == (4, 64)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("workers", "crops"), [(0, 1), (2, 1), (2, 10)])
def test_frames_resized_by_the_encoder_equal_frames_resized_by_the_workers(tmp_path, workers, crops):
    """A GPU encoder resizes small frames itself: they travel at their decoded size (through the worker
    sockets too) and give the same embeddings as frames the workers resized."""
    video = make_video(tmp_path / "a.mp4", 70, seed=7)  # 48x32 frames
    cfg = config(sampling="mean:4")
    bundle, _ = load_clip(cfg, torch.device("cpu"))
    plan = CropPlan(crops, bundle.image_size)
    encoder = BatchEncoder(bundle, plan, torch.device("cpu"), 16)
    offsets = sample_offsets("mean:4", 16)
    embeddings, sizes = {}, {}
    for on_device in (False, True):
        job = decode_job(16, offsets, plan, encoder.frames_per_batch, resize_on_device=on_device)
        chunks = [e.frames for e in decode_events([(0, str(video))], job, workers) if isinstance(e, Chunk)]
        sizes[on_device] = {tuple(c.shape[1:]) for c in chunks}
        with torch.no_grad():
            embeddings[on_device] = torch.cat([encoder.encode(c) for c in chunks])
    assert sizes == {False: {(3, *plan.frame_size)}, True: {(3, 32, 48)}}
    assert embeddings[True].shape == (16, crops, 64)
    torch.testing.assert_close(embeddings[True], embeddings[False], rtol=0, atol=0)


@pytest.mark.parametrize("threads", [0, 1])
def test_skipping_unsampled_reference_free_frames_changes_nothing(tmp_path, threads):
    """x264 (B-frames): the frames of complete snippets that are decoded equal a full decode's, T and the
    frame count too, while non-reference frames nobody samples are not decoded at all."""
    video = tmp_path / "x264.mp4"
    write_video(video, render(VideoPlan("x264", "x", 101, (), 6), 64, 48), codec="libx264")  # T = 6
    order = _presentation_order(video)
    assert order is not None and sorted(order.values()) == list(range(101))
    full = decoded_frames(video)
    for sampling in ("center", "mean:4"):
        offsets = sample_offsets(sampling, 16)
        runs = [
            list(decode_snippets(video, 16, offsets, 4, threads, skip_unused=skip)) for skip in (True, False)
        ]
        fast, slow = ([i for i in r if isinstance(i, list)] for r in runs)
        assert runs[0][-1] == runs[1][-1] == VideoInfo(frames=101, fps=25.0, snippets=6)
        assert [len(c) for c in fast] == [len(c) for c in slow] == [4 * len(offsets), 2 * len(offsets)]
        want = full[[16 * t + o for t in range(6) for o in offsets]]
        np.testing.assert_array_equal(np.stack(sum(fast, [])), want)
        np.testing.assert_array_equal(np.stack(sum(slow, [])), want)
    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        kept = sum(f is not None for f in _sampled_frames(c, stream, order, lambda i: i % 16 == 8))
    assert kept < 101  # frames really were skipped
    # MPEG-4 part 2 (AVI-style packing) is always decoded frame by frame
    assert _presentation_order(make_video(tmp_path / "mpeg4.mp4", 40)) is None


def test_frames_that_do_not_follow_the_timestamps_fall_back_to_a_full_decode(tmp_path, monkeypatch):
    """A decoder dropping the leading frames (or any order that does not fit) is caught before any
    chunk is out, and the video is decoded in full instead of shifting every frame index."""
    video = tmp_path / "x264.mp4"
    write_video(video, render(VideoPlan("x264", "x", 64, (), 7), 64, 48), codec="libx264")
    exact = _presentation_order(video)
    monkeypatch.setattr(video_module, "_presentation_order", lambda _: {t: i + 1 for t, i in exact.items()})
    offsets = sample_offsets("center", 16)
    *chunks, info = decode_snippets(video, 16, offsets, 2, 1)
    assert info == VideoInfo(frames=64, fps=25.0, snippets=4)
    np.testing.assert_array_equal(np.stack(sum(chunks, [])), decoded_frames(video)[[8, 24, 40, 56]])


def test_ten_crops_write_ten_files_per_video(videos, tmp_path):
    dst = tmp_path / "f"
    run(videos, dst, config(crops=10))
    files = sorted(p.name for p in (dst / "Fighting").iterdir())
    assert files == [f"Fighting001__{k}.npy" for k in range(10)] + [
        f"Fighting002__{k}.npy" for k in range(10)
    ]
    crops = [np.load(dst / "Fighting" / f"Fighting001__{k}.npy") for k in range(10)]
    assert all(c.shape == (3, 64) for c in crops)
    assert not np.allclose(crops[0], crops[5]), "a crop and its mirror image should not embed identically"
    lines = (dst / "features.csv").read_text().splitlines()
    assert len(lines) == 1 + 4 * 10 and lines[1:11] == [
        f"Fighting/Fighting001__{k}.npy,Fighting" for k in range(10)
    ]
    ds_yaml = tmp_path / "d.yaml"
    ds_yaml.write_text(
        "name: t\nclasses: [Normal, Fighting]\ntrain_list: f/features.csv\ntest_list: f/features.csv\n"
    )
    assert len(load_dataset(ds_yaml).train.samples()) == 40


def test_resume_skips_done_videos_and_redoes_changed_ones(videos, tmp_path):
    dst = tmp_path / "f"
    first = run(videos, dst)
    assert first.extracted == 4
    stamp = {p: p.stat().st_mtime_ns for p in dst.rglob("*.npy")}

    again = run(videos, dst)
    assert (again.extracted, again.skipped) == (0, 4)
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*.npy")} == stamp
    assert len((dst / "features.csv").read_text().splitlines()) == 5

    (dst / "Normal" / "Normal001__0.npy").unlink()
    (dst / "Fighting" / "Fighting002__0.npy").write_bytes(b"truncated")  # wrong size: not trusted
    redo = run(videos, dst)
    assert (redo.extracted, redo.skipped) == (2, 2)
    assert np.load(dst / "Normal" / "Normal001__0.npy").shape == (2, 64)
    assert (dst / "Fighting" / "Fighting002__0.npy").stat().st_size == npy_size(1, 64)

    changed = run(videos, dst, config(sampling="mean:2"))
    assert (changed.extracted, changed.skipped) == (4, 0)
    assert manifest_of(dst)["settings"]["sampling"] == "mean:2"


def test_train_and_test_lists_share_an_output_folder(videos, tmp_path):
    dst = tmp_path / "f"
    test_list = tmp_path / "test.csv"
    test_list.write_text(
        "path,label\nvideos/Normal/Normal001.mp4,Normal\nvideos/Fighting/Fighting001.mp4,Fighting\n"
    )
    run(videos, dst, list_name="train.csv")
    run(test_list, dst, list_name="test.csv")
    assert {p.name for p in dst.iterdir() if p.is_file()} == {
        "train.csv",
        "train.extraction.json",
        "test.csv",
        "test.extraction.json",
    }
    # the list order is kept (it is the evaluation order)
    assert (dst / "test.csv").read_text().splitlines()[1:] == [
        "Normal/Normal001__0.npy,Normal",
        "Fighting/Fighting001__0.npy,Fighting",
    ]


def test_plain_text_list_takes_labels_from_folders(videos, tmp_path):
    lst = tmp_path / "videos.txt"
    lst.write_text(f"# comment\nvideos/Fighting/Fighting001.mp4\n{videos / 'loose.mp4'}\n")
    run(lst, tmp_path / "f")
    assert (tmp_path / "f" / "features.csv").read_text().splitlines()[1:] == [
        "Fighting/Fighting001__0.npy,Fighting",
        "videos/loose__0.npy,videos",
    ]


def test_duplicate_names_and_bad_lists_are_usage_errors(videos, tmp_path):
    make_video(videos / "Other" / "Normal001.mp4", 16)
    with pytest.raises(DataError, match="two videos are named 'Normal001'"):
        run(videos, tmp_path / "f")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\na.mp4,Normal\n")
    with pytest.raises(DataError, match="header 'path,label'"):
        run(bad, tmp_path / "f")
    with pytest.raises(DataError, match="does not exist"):
        run(tmp_path / "missing", tmp_path / "f")


# --------------------------------------------------------------------------------- failures and CLI


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """Two good videos and every kind of bad input."""
    root = tmp_path / "src"
    make_video(root / "Normal" / "good1.mp4", 32, seed=1)
    make_video(root / "Normal" / "good2.mp4", 20, seed=2)
    make_video(root / "Normal" / "short.mp4", 10, seed=3)
    whole = make_video(tmp_path / "whole.mp4", 64, seed=4).read_bytes()
    (root / "Normal" / "corrupt.mp4").write_bytes(whole[: len(whole) // 2])
    (root / "Normal" / "text.mp4").write_text("this is not a video\n" * 20)
    with av.open(str(root / "Normal" / "zero.avi"), "w") as c:  # a video stream without a single frame
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        c.start_encoding()
        c.mux(s.encode())
    return root


REASONS = {
    "corrupt": "not a readable video file",
    "short": "only 10 frames",
    "text": "not a readable video file",
    "zero": "no frames",
}


def test_failures_are_recorded_and_the_rest_continues(broken, tmp_path):
    dst = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["extract", "--videos", str(broken), "--out", str(dst), "--workers", "0", *TINY]
    )
    assert result.exit_code == 1, result.output
    assert "4 video(s) failed" in result.output
    m = manifest_of(dst)
    assert m["summary"] == {"videos": 6, "ok": 2, "failed": 4}
    for name, reason in REASONS.items():
        entry = m["videos"][name]
        assert entry["status"] == "failed" and reason in entry["reason"], (name, entry)
    assert (dst / "features.csv").read_text().splitlines()[1:] == [
        "Normal/good1__0.npy,Normal",
        "Normal/good2__0.npy,Normal",
    ]
    assert sorted(p.name for p in (dst / "Normal").iterdir()) == ["good1__0.npy", "good2__0.npy"]

    # a re-run retries the failures only, and still says that something failed
    again = CliRunner().invoke(
        cli, ["extract", "--videos", str(broken), "--out", str(dst), "--workers", "0", *TINY]
    )
    assert again.exit_code == 1 and "extracted 0, skipped 2, failed 4" in again.output


def test_strict_stops_at_the_first_failure(broken, tmp_path):
    dst = tmp_path / "out"
    args = ["extract", "--videos", str(broken), "--out", str(dst), "--workers", "0", "--strict", *TINY]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "--strict" in result.output
    m = manifest_of(dst)
    assert (
        m["summary"]["failed"] == 1 and m["videos"]["corrupt"]["status"] == "failed"
    )  # sorted: corrupt first
    assert not list(dst.rglob("*tmp*"))


def test_missing_file_in_a_list_is_a_recorded_failure(broken, tmp_path):
    lst = tmp_path / "l.csv"
    lst.write_text("path,label\nsrc/Normal/good1.mp4,Normal\nsrc/Normal/gone.mp4,Normal\n")
    report = run(lst, tmp_path / "out")
    assert report.extracted == 1 and "cannot read the file" in report.failed["gone"]


def test_worker_processes_give_the_same_features(broken, tmp_path):
    inline = run(broken, tmp_path / "a")
    pooled = run(broken, tmp_path / "b", config(workers=2))
    assert set(inline.failed) == set(pooled.failed) == set(REASONS)
    for name in ("good1", "good2"):
        a = np.load(tmp_path / "a" / "Normal" / f"{name}__0.npy")
        b = np.load(tmp_path / "b" / "Normal" / f"{name}__0.npy")
        np.testing.assert_array_equal(a, b)  # batches never mix videos: arrival order changes nothing


def test_flags_override_config_and_bad_values_exit_2(videos, tmp_path):
    dst = tmp_path / "out"
    args = ["extract", "--videos", str(videos), "--out", str(dst), *TINY]
    ok = CliRunner().invoke(
        cli,
        [
            *args,
            "--workers",
            "0",
            "--crops",
            "10",
            "--sampling",
            "mean:2",
            "--set",
            "extract.sampling=center",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert (
        manifest_of(dst)["settings"]["crops"] == 10 and manifest_of(dst)["settings"]["sampling"] == "mean:2"
    )
    bad = CliRunner().invoke(cli, [*args, "--sampling", "median"])
    assert bad.exit_code == 2 and "extract.sampling" in bad.output and "mean:K" in bad.output
    bad_shard = CliRunner().invoke(cli, [*args, "--shard", "2/2"])
    assert bad_shard.exit_code == 2 and "0 <= K < N" in bad_shard.output
    bad_name = CliRunner().invoke(cli, [*args, "--list-name", "sub/x.csv"])
    assert bad_name.exit_code == 2 and "plain file name" in bad_name.output


def test_shards_then_merge_equal_one_run(videos, tmp_path):
    whole = tmp_path / "whole"
    run(videos, whole, list_name="train.csv")
    dst = tmp_path / "sharded"
    runner = CliRunner()
    merge = ["extract-merge", "--out", str(dst), "--list-name", "train.csv", "--shards", "3"]
    for k in range(3):
        if k == 2:
            early = runner.invoke(cli, merge)
            assert early.exit_code == 2 and "shard 2/3 has no manifest" in early.output
        shard = [
            "extract",
            "--videos",
            str(videos),
            "--out",
            str(dst),
            "--list-name",
            "train.csv",
            "--shard",
            f"{k}/3",
        ]
        res = runner.invoke(cli, [*shard, "--workers", "0", *TINY])
        assert res.exit_code == 0, res.output
        assert (dst / f"train.shard{k}-of-3.csv").is_file() and (
            dst / f"train.shard{k}-of-3.extraction.json"
        ).is_file()
    assert len((dst / "train.shard0-of-3.csv").read_text().splitlines()) == 1 + 2  # videos 0 and 3
    res = runner.invoke(cli, merge)
    assert res.exit_code == 0, res.output
    assert (dst / "train.csv").read_text() == (whole / "train.csv").read_text()
    merged, single = manifest_of(dst, "train"), manifest_of(whole, "train")
    assert merged["settings_id"] == single["settings_id"]
    assert list(merged["videos"]) == list(single["videos"])


@pytest.mark.slow
def test_a_killed_extraction_leaves_no_decode_worker_and_no_traceback(tmp_path):
    """SIGKILL of `cplvad extract` mid-run: its decode workers (children of the fork server) end at their
    next message to it, quietly (no BrokenPipeError / ConnectionResetError traceback on the terminal)."""
    psutil = pytest.importorskip("psutil")
    for i in range(8):
        make_video(tmp_path / "videos" / "Normal" / f"v{i}.mp4", 480, seed=i)
    command = [sys.executable, "-c", "from cplvad.cli import main; main()", "extract", "--videos"]
    command += [str(tmp_path / "videos"), "--out", str(tmp_path / "out"), "--workers", "2", "--crops", "10"]
    env = {**os.environ, "PYTHONPATH": str(Path(cplvad.__file__).parents[1])}
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([*command, *TINY], stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        deadline = time.monotonic() + 300
        while True:  # until both workers run: grandchildren, under the fork server
            family = psutil.Process(proc.pid).children(recursive=True)
            workers = [p for p in family if p.ppid() != proc.pid]
            if len(workers) == 2:
                break
            assert proc.poll() is None and time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGSTOP)  # mid-run: the workers have work queued for it
        time.sleep(1)
        assert proc.poll() is None, "the extraction ended before it could be killed"
        proc.kill()
        proc.wait()
        _, alive = psutil.wait_procs(family, timeout=60)
        assert alive == [], f"left running: {alive}"
    finally:
        proc.kill()
    text = stderr.read_text()
    assert "Traceback" not in text and "Error" not in text, text
