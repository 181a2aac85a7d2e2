"""`cplvad predict` on generated videos and feature files, with the glitch model (tests/glitch.py: a tiny model
trained once on videos with a planted anomaly)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import empty_bucket
from glitch import CLI, FPS, PLANTED, SETS, config, make_video

from cplvad.cli import cli
from cplvad.eval.events import EventTracker, find_events
from cplvad.extract.inmemory import FeatureEncoder
from cplvad.extract.runner import extract
from cplvad.extract.video import VideoInfo
from cplvad.predict import Input, PredictOptions, PredictRunner, make_encoder, open_predictor, predict
from cplvad.predict.report import SCHEMA
from cplvad.predict.stream import StreamScorer


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("probes")
    return {
        "glitch": make_video(root / "videos" / "glitch.mp4", 320, 999, (PLANTED,)),
        "normal": make_video(root / "videos" / "normal.mp4", 320, 998),
    }


def iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def read(path: Path | None) -> dict:
    assert path is not None
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------------ events


def test_events_boundaries_classes_and_filtering():
    classes = ["Normal", "A", "B"]
    binary = np.array([0.1, 0.2, 0.9, 0.5, 0.1, 0.7, 0.1, 0.6, 0.8], np.float32)
    probs = np.tile(np.array([[0.6, 0.1, 0.3]], np.float32), (9, 1))  # normal most likely: still class B
    probs[7:] = [0.2, 0.7, 0.1]
    events = find_events(binary, probs, 0.5, 1, classes, fps=16.0)
    assert [(e.start_snippet, e.end_snippet) for e in events] == [
        (2, 4),
        (5, 6),
        (7, 9),
    ]  # >= threshold is in
    first = events[0].to_json()
    assert first == {
        "start_frame": 32,
        "end_frame": 64,
        "start_s": 2.0,
        "end_s": 4.0,
        "class": "B",
        "score": pytest.approx(0.9),
        "class_probability": pytest.approx(0.3),
        "start_snippet": 2,
        "end_snippet": 4,
    }
    assert events[2].label == "A" and events[2].end_frame == 144  # closed by the end of the video
    assert [(e.start_snippet, e.end_snippet) for e in find_events(binary, probs, 0.5, 2, classes)] == [
        (2, 4),
        (7, 9),
    ]
    assert find_events(binary, probs, 0.5, 1, classes)[0].start_s is None  # no fps: no seconds


def test_event_tracker_in_pieces_equals_whole_video():
    rng = np.random.default_rng(1)
    binary = (rng.random(500) < 0.3).astype(np.float32) * rng.random(500)
    probs = rng.dirichlet(np.ones(4), 500).astype(np.float32)
    whole = find_events(binary, probs, 0.2, 2, list("NABC"), fps=30.0)
    tracker = EventTracker(0.2, 2, list("NABC"), fps=30.0)
    pieces = []
    cuts = [0, 1, 2, 7, 32, 33, 100, 250, 251, 499, 500]
    for a, b in zip(cuts, cuts[1:], strict=False):
        pieces += tracker.update(binary[a:b], probs[a:b])
    pieces += tracker.finish()
    assert len(whole) > 10 and pieces == whole


# ------------------------------------------------------------------------------------------- batch mode


def test_video_prediction_report_events_and_plot(model_dir, probes, tmp_path):
    out = tmp_path / "out"
    results = predict(
        [probes["glitch"], probes["normal"]],
        model_dir,
        config(),
        PredictOptions(out, plot=True, threshold=0.5),
    )
    assert [r.error for r in results] == [None, None]
    glitch, normal = (read(r.report) for r in results)
    assert {p.name for p in out.iterdir()} == {
        "glitch.json",
        "glitch.png",
        "normal.json",
        "normal.png",
        "index.json",
        "monitor",  # the score histograms of `cplvad monitor` (tests/test_monitor.py)
    }

    sha = hashlib.sha256((model_dir / "model.pt").read_bytes()).hexdigest()
    assert (
        glitch["schema"] == SCHEMA
        and glitch["input"] == str(probes["glitch"])
        and glitch["input_kind"] == "video"
    )
    assert glitch["model"]["version"] == f"sha256:{sha[:12]}" and glitch["model"]["weights_sha256"] == sha
    assert glitch["classes"] == ["Normal", "Glitch"]
    assert (glitch["threshold"], glitch["threshold_source"], glitch["false_alarm_rate"]) == (
        0.5,
        "user",
        None,
    )
    assert (glitch["fps"], glitch["frames"], glitch["snippets"], glitch["scored_frames"]) == (
        25.0,
        320,
        20,
        320,
    )
    assert glitch["duration_s"] == 12.8 and glitch["frames_per_snippet"] == 16
    snippet = np.array(glitch["snippet_scores"])
    np.testing.assert_array_equal(glitch["frame_scores"], np.repeat(snippet, 16))
    probs = np.array(glitch["snippet_class_probabilities"])
    assert probs.shape == (20, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)

    # the planted anomaly is found (a weakly supervised model localises it to within a few snippets)
    assert normal["events"] == [] and max(normal["snippet_scores"]) < 0.5
    best = max(glitch["events"], key=lambda e: e["score"])
    assert best["class"] == "Glitch" and best["score"] > 0.8
    assert iou((best["start_frame"], best["end_frame"]), PLANTED) >= 0.3, glitch["events"]
    for e in glitch["events"]:
        assert e["start_frame"] == 16 * e["start_snippet"] and e["end_frame"] == 16 * e["end_snippet"]
        assert e["start_s"] == round(e["start_frame"] / FPS, 3) and e["end_s"] == round(
            e["end_frame"] / FPS, 3
        )
        assert min(snippet[e["start_snippet"] : e["end_snippet"]]) >= 0.5 and e["score"] == max(
            snippet[e["start_snippet"] : e["end_snippet"]]
        )
    again = find_events(snippet, probs, 0.5, 1, glitch["classes"], fps=FPS)
    assert [(e.start_frame, e.end_frame) for e in again] == [
        (e["start_frame"], e["end_frame"]) for e in glitch["events"]
    ]

    png = (out / "glitch.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_features_input_matches_the_video_and_default_threshold_is_calibrated(model_dir, probes, tmp_path):
    extract(str(probes["glitch"].parent), str(tmp_path / "f"), config(), progress=False, log=lambda _: None)
    npy = tmp_path / "f" / "Normal" / "glitch__0.npy"  # videos directly in the source folder: label Normal
    cfg = config()
    (video,) = predict([probes["glitch"]], model_dir, cfg, PredictOptions(tmp_path / "v"))
    (with_fps,) = predict([npy], model_dir, cfg, PredictOptions(tmp_path / "a", fps=FPS))
    (without,) = predict([npy], model_dir, cfg, PredictOptions(tmp_path / "b"))
    v, a, b = read(video.report), read(with_fps.report), read(without.report)

    meta = json.loads((model_dir / "meta.json").read_text())["extra"]["calibration"]
    assert v["threshold_source"] == "calibrated" and v["threshold"] == round(meta["threshold"], 6)
    assert v["false_alarm_rate"] == 0.01
    assert a["input_kind"] == "features" and a["frames"] == 320 and a["fps"] == 25.0
    np.testing.assert_allclose(
        a["snippet_scores"], v["snippet_scores"], atol=1e-5
    )  # features match extraction
    assert [(e["start_frame"], e["end_frame"], e["class"]) for e in a["events"]] == [
        (e["start_frame"], e["end_frame"], e["class"]) for e in v["events"]
    ]
    assert b["fps"] is None and b["duration_s"] is None and all(e["start_s"] is None for e in b["events"])

    # the in-memory features are the extracted ones
    enc = FeatureEncoder(cfg, torch.device("cpu"))
    [(_, encoded)] = list(enc.videos([str(probes["glitch"])]))
    np.testing.assert_allclose(encoded.features, np.load(npy), rtol=1e-5, atol=1e-6)


def test_ten_crop_models_are_scored_on_the_centre_crop(probes, tmp_path):
    cfg = config("extract.crops=10", "extract.sampling=mean:2")
    extract(str(probes["normal"].parent), str(tmp_path / "f"), cfg, progress=False, log=lambda _: None)
    [(_, encoded)] = list(FeatureEncoder(cfg, torch.device("cpu")).videos([str(probes["normal"])]))
    assert encoded.features.shape == (20, 64)
    np.testing.assert_allclose(
        encoded.features, np.load(tmp_path / "f" / "Normal" / "normal__0.npy"), rtol=1e-5, atol=1e-6
    )
    streamed = np.concatenate(
        [
            x
            for x in FeatureEncoder(cfg, torch.device("cpu")).stream(str(probes["normal"]))
            if not isinstance(x, VideoInfo)
        ]
    )
    np.testing.assert_allclose(streamed, encoded.features, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------- streaming


def test_stream_prints_events_then_a_summary_and_equals_batch(model_dir, probes, tmp_path):
    (batch,) = predict(
        [probes["glitch"]], model_dir, config(), PredictOptions(tmp_path / "batch", threshold=0.5)
    )
    res = CliRunner().invoke(
        cli,
        [
            "predict",
            "--stream",
            str(probes["glitch"]),
            "--model",
            str(model_dir),
            "--out",
            str(tmp_path / "s"),
            "--threshold",
            "0.5",
            *CLI,
            *SETS,
        ],
    )
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [x["type"] for x in lines] == ["event"] * (len(lines) - 1) + ["summary"] and len(lines) >= 2
    summary = lines[-1]
    assert summary["input"] == str(probes["glitch"]) and summary["events"] == len(lines) - 1
    assert summary["snippets"] == 20 and summary["report"] == str(tmp_path / "s" / "glitch.json")
    streamed, whole = read(Path(summary["report"])), read(batch.report)
    np.testing.assert_allclose(streamed["snippet_scores"], whole["snippet_scores"], atol=1e-5)
    assert streamed["events"] == whole["events"]
    assert [{k: v for k, v in x.items() if k not in ("type", "input")} for x in lines[:-1]] == whole["events"]


def test_stream_reports_each_event_as_soon_as_it_ends(model_dir, tmp_path):
    """The glitch ends at snippet ~12 of 100: its event comes out after the first chunk of 32 snippets."""
    video = make_video(tmp_path / "long.mp4", 1600, 999, (PLANTED,))
    predictor = open_predictor(model_dir, config(), torch.device("cpu"))
    runner = PredictRunner(predictor, config(), PredictOptions(out=tmp_path / "o", threshold=0.5))
    seen = []
    [result] = runner.stream(
        [Input(video, "video")], on_event=lambda r, e: seen.append((e, runner.last_scorer.snippets))
    )
    assert result.ok and result.snippets == 100
    first, scored_then = seen[0]
    assert iou((first.start_frame, first.end_frame), PLANTED) >= 0.3 and scored_then == 32


def _streaming_peak(predictor, encoder: FeatureEncoder, video: Path) -> tuple[int, int]:
    """Peak traced memory of the streaming loop (decode, encode, score) and the most snippets held."""
    tracker = EventTracker(0.5, 1, predictor.classes)
    scorer = StreamScorer(predictor.model, torch.device("cpu"), tracker)
    tracemalloc.start()
    try:
        for item in encoder.stream(str(video)):
            if not isinstance(item, VideoInfo):
                scorer.add(item)
        scorer.finish()
        return tracemalloc.get_traced_memory()[1], scorer.peak_pending
    finally:
        tracemalloc.stop()


def test_stream_memory_does_not_grow_with_the_video(model_dir, tmp_path):
    predictor = open_predictor(model_dir, config(), torch.device("cpu"))
    encoder = make_encoder(predictor, config())  # batches of 16 images: chunks of 16 snippets
    short = make_video(tmp_path / "short.mp4", 800, 5, ((300, 360),))
    long = make_video(tmp_path / "long.mp4", 6400, 5, ((300, 360), (5000, 5060)))  # 8x longer: 400 snippets
    _streaming_peak(predictor, encoder, short)  # warm-up (first-call allocations)
    peak_short, held_short = _streaming_peak(predictor, encoder, short)
    peak_long, held_long = _streaming_peak(predictor, encoder, long)
    n, chunk = predictor.model.cfg.max_len, encoder.job.snippets_per_chunk
    assert chunk == 16 and held_short <= n + chunk and held_long <= n + chunk
    # holding the long video's extra sampled frames would take 350 x 48 x 32 x 3 bytes more (~1.6 MB), all
    # its frames ~30 MB; the scores kept for the report grow by ~4 KB
    assert peak_long - peak_short < 300_000, (peak_short, peak_long)


# ---------------------------------------------------------------------------------------------- failures


def test_bad_inputs_fail_clearly_and_the_others_are_scored(model_dir, probes, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = make_video(src / "good.mp4", 64, 3)
    (src / "text.mp4").write_text("this is not a video\n" * 20)
    whole = probes["normal"].read_bytes()
    (src / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    make_video(src / "short.mp4", 10, 4)
    np.save(src / "wide.npy", np.zeros((10, 32), np.float32))
    (src / "broken.npy").write_bytes(b"not an array")
    args = ["predict", str(src), "--model", str(model_dir), "--out", str(tmp_path / "out"), *CLI]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".cplvad",
        "good.json",
        "index.json",
        "monitor",
    ]
    assert read(tmp_path / "out" / "good.json")["snippets"] == 4
    err = " ".join(res.stderr.split())
    assert "5 input(s) failed" in err
    assert f"{src / 'text.mp4'}: not a readable video file" in err
    assert f"{src / 'truncated.mp4'}: not a readable video file" in err
    assert f"{src / 'short.mp4'}: only 10 frames" in err
    assert f"feature file {src / 'wide.npy'} has 32-d features but 64 are expected" in err
    assert f"feature file {src / 'broken.npy'} is not a NumPy file (.npy)" in err
    assert good.exists()

    streamed = CliRunner().invoke(
        cli, [*args[:1], str(src / "text.mp4"), str(src / "wide.npy"), *args[2:], "--stream"]
    )
    assert streamed.exit_code == 1
    lines = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert [x["type"] for x in lines] == ["error", "error"]
    assert "not a readable video file" in lines[0]["error"] and "32-d features but 64" in lines[1]["error"]


def test_usage_and_model_errors_exit_2(model_dir, probes, tmp_path):
    def run(*args: str):
        return CliRunner().invoke(cli, ["predict", *args, "--out", str(tmp_path / "out"), *CLI])

    res = run(str(tmp_path / "missing.mp4"), "--model", str(model_dir))
    assert res.exit_code == 2 and "missing.mp4 does not exist" in res.output
    res = run(str(probes["glitch"]), "--model", str(tmp_path))
    assert res.exit_code == 2 and "is not a cplvad model directory" in res.output
    res = run(str(probes["glitch"]), "--model", str(model_dir), "--threshold", "1.5")
    assert res.exit_code == 2 and "--threshold" in res.output

    uncalibrated = tmp_path / "uncalibrated"
    shutil.copytree(model_dir, uncalibrated)
    meta = json.loads((uncalibrated / "meta.json").read_text())
    meta["extra"] = {}
    (uncalibrated / "meta.json").write_text(json.dumps(meta))
    res = run(str(probes["glitch"]), "--model", str(uncalibrated))
    assert res.exit_code == 2 and "no calibrated threshold" in res.output and "--threshold" in res.output
    assert run(str(probes["glitch"]), "--model", str(uncalibrated), "--threshold", "0.5").exit_code == 0

    # a model whose stored CLIP does not give its feature width (e.g. a config edited by hand)
    clip_dir = tmp_path / "clips"
    clip_dir.mkdir()
    tiny = json.loads((Path(__file__).parents[1] / "src/cplvad/clip_configs/cplvad-tiny.json").read_text())
    (clip_dir / "cplvad-tiny32.json").write_text(json.dumps({**tiny, "embed_dim": 32}))
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["clip"] = {**cfg["clip"], "model": "cplvad-tiny32", "config_dir": str(clip_dir)}
    (other / "config.json").write_text(json.dumps(cfg))
    res = run(str(probes["glitch"]), "--model", str(other))
    assert res.exit_code == 2
    assert "scores 64-d features but its CLIP (cplvad-tiny32) gives 32-d embeddings" in " ".join(
        res.output.split()
    )


# ---------------------------------------------------------------------------------------------- registry


def test_registry_uri_reports_the_registered_version(model_dir, probes, tmp_path, monkeypatch):
    import mlflow

    from cplvad.tracking.registry import register_model
    from cplvad.tracking.runs import setup_mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    cfg = config()
    setup_mlflow(cfg)
    with mlflow.start_run() as run:
        pass
    assert (
        register_model(model_dir, run.info.run_id, cfg, dataset="glitch", metrics={"frame_auc_binary": 90.0})
        == "1"
    )
    mlflow.MlflowClient().set_registered_model_alias("cplvad", "champion", "1")  # promotion: test_registry.py
    for uri in ("models:/cplvad@champion", "models:/cplvad/1"):
        (result,) = predict([probes["normal"]], uri, cfg, PredictOptions(tmp_path / "out"))
        model = read(result.report)["model"]
        assert (model["source"], model["version"], model["registered_model"]) == (uri, "1", "cplvad")
        assert model["weights_sha256"] == hashlib.sha256((model_dir / "model.pt").read_bytes()).hexdigest()


# ------------------------------------------------------------------------------- resume, index, S3 and URLs


def test_a_rerun_skips_what_is_done_and_the_index_lists_every_input(model_dir, probes, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("glitch", "normal"):
        shutil.copy(probes[name], src / f"{name}.mp4")
    (src / "broken.mp4").write_text("not a video\n")
    out = tmp_path / "out"
    args = ["predict", str(src), "--model", str(model_dir), "--out", str(out), "--threshold", "0.5", *CLI]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 1, first.output
    index = read(out / "index.json")
    assert (index["count"], index["scored"], index["failed"]) == (3, 2, 1)
    entries = {e["name"]: e for e in index["videos"]}
    glitch = read(out / "glitch.json")
    assert (
        entries["glitch"]["report"] == "glitch.json"
        and entries["glitch"]["events"] == len(glitch["events"]) >= 1
    )
    assert (
        entries["glitch"]["peak_score"] == max(glitch["snippet_scores"])
        and entries["glitch"]["top_class"] == "Glitch"
    )
    assert entries["glitch"]["event_classes"] == {"Glitch": len(glitch["events"])}
    assert entries["normal"]["events"] == 0 and entries["normal"]["top_class"] is None
    assert (
        entries["broken"]["status"] == "failed" and "not a readable video file" in entries["broken"]["error"]
    )
    assert glitch["input_bytes"] == (src / "glitch.mp4").stat().st_size

    before = (out / "glitch.json").stat().st_mtime_ns
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "scored 0 of 3 inputs (2 already done, skipped)" in " ".join(
        again.stderr.split()
    )
    assert (out / "glitch.json").stat().st_mtime_ns == before and read(out / "index.json")["count"] == 3

    # another threshold, a changed input or --rescore: scored again
    other = CliRunner().invoke(cli, [*args[: -len(CLI) - 2], "--threshold", "0.6", *CLI])
    assert (
        "scored 2 of 3 inputs" in " ".join(other.stderr.split())
        and read(out / "glitch.json")["threshold"] == 0.6
    )
    shutil.copy(probes["glitch"], src / "normal.mp4")
    changed = CliRunner().invoke(cli, [*args[: -len(CLI) - 2], "--threshold", "0.6", *CLI])
    assert "scored 1 of 3 inputs (1 already done, skipped)" in " ".join(changed.stderr.split())
    assert CliRunner().invoke(cli, [*args, "--rescore"]).stderr.count("already done") == 0


def test_s3_prefix_scored_into_s3_with_plots_index_and_review_page(model_dir, probes, s3_env, tmp_path):
    client = empty_bucket("cams")
    for name in ("glitch", "normal"):
        client.upload_file(str(probes[name]), "cams", f"night/cam1/{name}.mp4")
    args = [
        "predict",
        "s3://cams/night",
        "--model",
        str(model_dir),
        "--out",
        "s3://cams/scores",
        "--plot",
        "--report",
        "--threshold",
        "0.5",
        *CLI,
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="cams", Prefix="scores/")["Contents"]}
    glitch_events = json.loads(client.get_object(Bucket="cams", Key="scores/glitch.json")["Body"].read())
    assert {k for k in keys if not k.startswith(("scores/monitor/cam1/", "scores/clips/glitch/"))} == {
        f"scores/{k}"
        for k in (
            "glitch.json",
            "glitch.png",
            "normal.json",
            "normal.png",
            "index.json",
            "index.html",
            ".cplvad/owner.json",  # the prefix is cplvad's (its lock object is gone with the command)
        )
    }
    assert len([k for k in keys if k.startswith("scores/monitor/cam1/")]) == 1  # one day, one writer
    clips = [k for k in keys if k.startswith("scores/clips/glitch/") and k.endswith(".mp4")]
    assert len(clips) == len(glitch_events["events"]) > 0  # decoded from S3 for the page
    doc = json.loads(client.get_object(Bucket="cams", Key="scores/glitch.json")["Body"].read())
    local = read(
        predict([probes["glitch"]], model_dir, config(), PredictOptions(tmp_path / "local", threshold=0.5))[
            0
        ].report
    )
    assert doc["input"] == "s3://cams/night/cam1/glitch.mp4" and doc["events"] == local["events"]
    assert doc["input_bytes"] == probes["glitch"].stat().st_size
    page = client.get_object(Bucket="cams", Key="scores/index.html")["Body"].read().decode()
    assert page.count('class="video"') == 2 and "video not reachable from this page" in page
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "(2 already done, skipped)" in " ".join(again.stderr.split())


def test_stream_urls_need_live_and_passwords_are_never_shown(model_dir, tmp_path):
    from cplvad.predict.inputs import list_inputs

    [cam] = list_inputs(["rtsp://admin:s3cret@10.0.0.7:554/live/ch1"])
    assert (cam.kind, cam.name, cam.display) == (
        "stream",
        "10.0.0.7-554-live-ch1",
        "rtsp://10.0.0.7:554/live/ch1",
    )
    res = CliRunner().invoke(
        cli,
        [
            "predict",
            "rtsp://admin:s3cret@10.0.0.7:554/live/ch1",
            "--model",
            str(model_dir),
            "--out",
            str(tmp_path / "o"),
            *CLI,
        ],
    )
    assert res.exit_code == 1 and "s3cret" not in res.output
    assert "rtsp://10.0.0.7:554/live/ch1 is a network stream: score it with --live" in " ".join(
        res.output.split()
    )
    assert "s3cret" not in (tmp_path / "o" / "index.json").read_text()
