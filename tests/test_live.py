"""`cplvad predict --live`: sliding-window scoring, a loopback network stream (tests/stream_publisher.py serving
tcp://127.0.0.1:<port>), reconnection, growing files, stalls, resolution changes, webhooks and a clean stop,
with the glitch model (tests/glitch.py)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from glitch import CLI, FPS, PLANTED, SETS, H, W, scene

from cplvad.cli import cli
from cplvad.errors import ConfigError
from cplvad.eval.events import EventTracker
from cplvad.eval.scoring import score_videos
from cplvad.modeling.factory import load_model
from cplvad.monitor.histograms import read_histograms, score_histogram
from cplvad.predict.sliding import SlidingScorer, sliding_scores
from cplvad.predict.webhook import Webhook, WebhookStats
from cplvad.storage.location import open_location

REPO = Path(__file__).resolve().parents[1]
PUBLISHER = Path(__file__).with_name("stream_publisher.py")
N = 32
"""The glitch model's window (model.max_len)."""
STEP = 16
"""Snippets encoded at once by the tiny config (extract.batch_size 16): the scorer's largest batch."""
LATENCY = 8
FAST = [
    *CLI,
    *SETS,
    "--threshold",
    "0.5",
    "--latency",
    str(LATENCY),
    "--set",
    "predict.reconnect_backoff=0.2",
    "--set",
    "predict.reconnect_backoff_max=0.5",
]


def write_stream(path: Path, parts: list[tuple[int, int, int, tuple[tuple[int, int], ...]]]) -> Path:
    """An MPEG-TS file of glitch scenes (frames, seed, width, anomalies) with a key frame every 16 frames (a
    stream can be cut at any snippet). Parts of one width make one stream; streams of other widths are
    appended to the file, in order of their first part."""
    data = b""
    for k, width in enumerate(dict.fromkeys(w for _, _, w, _ in parts)):  # widths in order, each one stream
        segment = path.with_suffix(f".{k}.ts")
        height = width * H // W
        with av.open(str(segment), "w", format="mpegts") as out:
            stream = out.add_stream("mpeg4", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.gop_size = 16
            stream.bit_rate = int(0.6 * width * height * FPS)
            for frames, seed, _, anomalies in (p for p in parts if p[2] == width):
                for frame in scene(frames, seed, anomalies):
                    frame = np.kron(frame, np.ones((width // W, width // W, 1), np.uint8))
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(stream.encode())
        data += segment.read_bytes()
        segment.unlink()
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def stream_file(tmp_path_factory) -> Path:
    """Three scenes in one stream, 70 snippets: a glitch at frames 130-190, nothing, a glitch at 840-900."""
    root = tmp_path_factory.mktemp("live")
    return write_stream(
        root / "scenes.ts", [(320, 999, W, (PLANTED,)), (320, 998, W, ()), (480, 997, W, ((200, 260),))]
    )


def free_port() -> int:
    """A port nobody listens on now (for sources that are never opened)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def refused_address() -> Iterator[str]:
    """A ``tcp://`` address whose connections are refused for as long as the block runs: a socket that is
    bound and does not listen holds the port, so no other process can take it meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"tcp://127.0.0.1:{s.getsockname()[1]}"


@contextmanager
def publishing(path: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """tests/stream_publisher.py serving ``path``: its address, once it listens (it says so on stdout)."""
    proc = subprocess.Popen(
        [sys.executable, str(PUBLISHER), str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()  # it ended without listening
        yield f"tcp://127.0.0.1:{json.loads(line)['port']}", proc
    finally:
        proc.kill()
        proc.wait()


def wait_until(condition: Callable[[], bool], what: str, limit: float = 120.0) -> None:
    """Wait for ``condition`` (checked every 10 ms); ``limit`` only guards against a hang."""
    stop = threading.Event()
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        stop.wait(0.01)


def read_to_its_end(path: Path) -> bool:
    """Whether this process has ``path`` open for reading at its very end: the live reader (a thread of the
    test process, through CliRunner) has read all that was written and waits for more (FFmpeg's
    ``follow``). From /proc/self/fdinfo: the open files' flags and offsets."""
    size = path.stat().st_size
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if os.readlink(fd) != str(path):
                continue
            info = dict(
                line.split(":", 1) for line in (Path("/proc/self/fdinfo") / fd.name).read_text().splitlines()
            )
        except OSError:  # closed meanwhile
            continue
        if int(info["flags"], 8) & os.O_ACCMODE == os.O_RDONLY and int(info["pos"]) == size:
            return True
    return False


def lines_of(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def live(*args: str):
    return CliRunner().invoke(cli, ["predict", "--live", *args, *FAST])


def event_key(e: dict) -> tuple:
    """An event, its scores to 4 decimals: windows are batched as snippets happen to arrive, which moves the
    6th decimal."""
    return (
        e["start_snippet"],
        e["end_snippet"],
        e["class"],
        pytest.approx(e["score"], abs=1e-4),
        pytest.approx(e["class_probability"], abs=1e-4),
    )


# ----------------------------------------------------------------------------------------- sliding windows


def test_sliding_window_with_full_context_equals_batch_scoring(model_dir):
    model, _, _ = load_model(model_dir)
    rng = np.random.default_rng(0)
    short = rng.normal(size=(N - 5, model.feature_dim)).astype(np.float32)
    [(_, b, c)] = list(score_videos(model, [("v", short)], torch.device("cpu")))
    lb, lc = sliding_scores(model, short, N - 1, torch.device("cpu"))
    np.testing.assert_allclose(lb, b, atol=1e-6)
    np.testing.assert_allclose(lc, c, atol=1e-6)


def test_sliding_scorer_in_pieces_is_bounded_and_equals_whole(model_dir):
    model, _, _ = load_model(model_dir)
    feats = np.random.default_rng(1).normal(size=(90, model.feature_dim)).astype(np.float32)
    whole_b, whole_c = sliding_scores(model, feats, 5, torch.device("cpu"))
    scorer = SlidingScorer(model, torch.device("cpu"), 5, batch_size=7)
    parts, held = [], 0
    for a, b in zip([0, 1, 4, 40, 41, 60], [1, 4, 40, 41, 60, 90]):
        got_b, got_c = scorer.add(feats[a:b])
        assert len(got_b) == max(0, b - 5) - max(0, a - 5)  # each snippet once, as soon as 5 more are in
        assert scorer.waiting == min(b, 5)
        held = max(held, len(scorer._feats))
        parts.append((got_b, got_c))
    parts.append(scorer.finish())
    np.testing.assert_allclose(np.concatenate([p[0] for p in parts]), whole_b, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), whole_c, atol=1e-6)
    assert len(whole_b) == 90 and held <= N
    # snippet t is scored in the window [t + 5 - 31, t + 5]: its own window scored alone gives the same
    t = 70
    window = feats[t + 5 - (N - 1) : t + 6]
    [(_, b, _)] = list(score_videos(model, [("w", window)], torch.device("cpu")))
    assert whole_b[t] == pytest.approx(b[N - 1 - 5], abs=1e-6)
    with pytest.raises(ConfigError, match="between 0 and 31"):
        SlidingScorer(model, torch.device("cpu"), N)


def test_event_tracker_reports_an_open_event_once_it_is_long_enough():
    tracker = EventTracker(0.5, 2, ["Normal", "A"], fps=16.0)
    probs = np.tile([[0.2, 0.8]], (5, 1)).astype(np.float32)
    tracker.update(np.array([0.1, 0.9], np.float32), probs[:2])
    assert tracker.current() is None  # one snippet: shorter than min_snippets
    tracker.update(np.array([0.7], np.float32), probs[:1])
    cur = tracker.current()
    assert (cur.start_snippet, cur.end_snippet, cur.label, cur.score, cur.start_s) == (1, 3, "A", 0.9, 1.0)
    [closed] = tracker.update(np.array([0.1], np.float32), probs[:1])
    assert (closed.start_snippet, closed.end_snippet) == (1, 3) and tracker.current() is None


# ------------------------------------------------------------------------------------------------ streams


@pytest.mark.slow
def test_live_stream_over_loopback_gives_the_offline_events_within_the_latency(
    model_dir, stream_file, tmp_path
):
    offline = CliRunner().invoke(
        cli,
        [
            "predict",
            str(stream_file),
            "--model",
            str(model_dir),
            "--out",
            str(tmp_path / "offline"),
            *CLI,
            *SETS,
            "--threshold",
            "0.5",
        ],
    )
    assert offline.exit_code == 0, offline.output
    batch = json.loads((tmp_path / "offline" / "scenes.json").read_text())["events"]
    assert [e["class"] for e in batch] == ["Glitch", "Glitch"]

    with publishing(stream_file) as (url, _):
        res = live(
            url, "--model", str(model_dir), "--out", str(tmp_path / "net"), "--reconnect-attempts", "1"
        )
    assert res.exit_code == 0, res.output
    lines = lines_of(res.stdout)
    starts = [x for x in lines if x["type"] == "event_start"]
    ends = [x for x in lines if x["type"] == "event_end"]
    assert [x["type"] for x in lines] == ["event_start", "event_end"] * len(ends) + ["summary"]
    assert [x["event"] for x in starts] == [x["event"] for x in ends] == list(range(1, len(ends) + 1))

    # the offline events, each boundary within one snippet (live sees `latency` snippets of future context)
    assert len(ends) == len(batch), res.output
    for got, want in zip(ends, batch):
        assert got["class"] == want["class"]
        assert (
            abs(got["start_snippet"] - want["start_snippet"]) <= 1
            and abs(got["end_snippet"] - want["end_snippet"]) <= 1
        )
        assert got["start_frame"] == 16 * got["start_snippet"] and got["end_s"] == round(
            got["end_frame"] / FPS, 3
        )
    # reported within the latency: once snippet end + latency is in (plus at most one scoring batch)
    for x in ends:
        assert x["end_snippet"] + LATENCY + 1 <= x["received_snippets"] <= x["end_snippet"] + LATENCY + STEP
    for x in starts:
        assert x["received_snippets"] <= x["start_snippet"] + LATENCY + STEP

    summary = lines[-1]
    assert (summary["snippets"], summary["frames"], summary["fps"], summary["events"]) == (
        70,
        1120,
        25.0,
        len(ends),
    )
    assert "cannot open it (ConnectionRefusedError" in summary["ended"]  # the one reconnection attempt
    doc = json.loads(Path(summary["report"]).read_text())
    assert doc["input"] == url and doc["input_kind"] == "stream" and doc["snippets"] == 70
    assert doc["live"]["final"] and doc["live"]["part"] == 0 and doc["live"]["first_snippet"] == 0
    assert [event_key(e) for e in doc["events"]] == [event_key(e) for e in ends]
    err = " ".join(res.stderr.split())
    assert f"{url}: connected (25 fps)" in err and "dropped (the stream ended)" in err

    # the network loses nothing: the same file read live from disk gives the very same events
    replay = live(
        str(stream_file), "--model", str(model_dir), "--out", str(tmp_path / "file"), "--stall-timeout", "1"
    )
    assert replay.exit_code == 0, replay.output
    assert [event_key(x) for x in lines_of(replay.stdout) if x["type"] == "event_end"] == [
        event_key(e) for e in ends
    ]
    index = json.loads((tmp_path / "file" / "index.json").read_text())
    assert index["count"] == 1 and index["videos"][0]["events"] == len(ends)


def test_live_stream_reconnects_after_a_drop(model_dir, stream_file, tmp_path):
    # the publisher's connections: the first 480 packets, one closed unanswered (a failed attempt), the rest;
    # it listens throughout, so the reader's attempts find it whenever they come
    with publishing(stream_file, "--serve", "0:480", "-", "480:") as (url, proc):
        res = live(url, "--model", str(model_dir), "--out", str(tmp_path / "o"), "--reconnect-attempts", "2")
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert res.exit_code == 0, res.output
    err = " ".join(res.stderr.split())
    assert err.count(": connected (25 fps)") == 2 and ": connected (25 fps) after 3 attempt(s)" in err, err
    assert "dropped (the stream ended); reconnecting in 0.2 s" in err
    assert "dropped (cannot open it (InvalidDataError" in err  # the unanswered attempt, retried
    lines = lines_of(res.stdout)
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["reconnects"] == 1 and summary["snippets"] == 70
    assert summary["ended"].endswith("gave up after 2 failed attempt(s) to open it")  # refused once it ended
    ends = [x for x in lines if x["type"] == "event_end"]
    # a glitch before the drop (snippets 8-11) and one after it (snippets 52-56), counted over the session
    assert [e["class"] for e in ends] == ["Glitch", "Glitch"]
    assert ends[0]["end_snippet"] <= 30 and ends[1]["start_snippet"] >= 30


def test_stalled_and_dead_sources_fail_clearly_and_the_others_are_scored(model_dir, stream_file, tmp_path):
    # the stalled source sends 160 frames, then nothing, until the reader hangs up
    with (
        refused_address() as dead,
        publishing(stream_file, "--serve", "0:160", "--hold", "120") as (stalled, _),
    ):
        res = live(
            dead,
            stalled,
            str(stream_file),
            "--model",
            str(model_dir),
            "--out",
            str(tmp_path / "o"),
            "--stall-timeout",
            "1.5",
            "--reconnect-attempts",
            "2",
        )
    assert res.exit_code == 1, res.output
    err = " ".join(res.stderr.split())
    assert f"{stalled}: dropped (no data for 1.5 s); reconnecting" in err
    assert f"{dead}: cannot open it (ConnectionRefusedError" in err
    assert "gave up after 2 failed attempt(s) to open it" in err and "1 input(s) failed" in err
    by_input = {x["input"]: x for x in lines_of(res.stdout) if x["type"] in ("summary", "error")}
    assert by_input[dead]["type"] == "error"
    assert by_input[stalled]["snippets"] == 10  # the 160 frames sent before the stall
    assert by_input[str(stream_file)]["snippets"] == 70 and by_input[str(stream_file)]["events"] == 2


def test_a_growing_file_is_followed_until_it_stops_growing(model_dir, stream_file, tmp_path):
    data, growing = stream_file.read_bytes(), tmp_path / "recording.ts"
    growing.write_bytes(data[: len(data) // 4])
    caught_up: list[bool] = []

    def record() -> None:  # a recorder appending the rest in three pieces, each once the reader caught up
        for k in (2, 3, 4):
            try:
                wait_until(lambda: read_to_its_end(growing), "the reader waits at the end of the file")
                caught_up.append(True)
            except AssertionError:
                caught_up.append(False)  # appended anyway, so that the reader ends
            with growing.open("ab") as f:
                f.write(data[len(data) * (k - 1) // 4 : len(data) * k // 4])

    recorder = threading.Thread(target=record)
    recorder.start()
    res = live(str(growing), "--model", str(model_dir), "--out", str(tmp_path / "o"), "--stall-timeout", "2")
    recorder.join()
    assert res.exit_code == 0, res.output
    assert caught_up == [True, True, True]  # each piece came while the reader waited for more
    lines = lines_of(res.stdout)
    assert lines[-1]["snippets"] == 70 and lines[-1]["ended"] == "no data for 2 s"
    replay = live(
        str(stream_file), "--model", str(model_dir), "--out", str(tmp_path / "r"), "--stall-timeout", "1"
    )
    assert [event_key(x) for x in lines if x["type"] == "event_end"] == [
        event_key(x) for x in lines_of(replay.stdout) if x["type"] == "event_end"
    ]


def test_a_long_session_is_written_in_parts_that_add_up(model_dir, stream_file, tmp_path):
    out = tmp_path / "o"
    res = live(
        str(stream_file),
        "--model",
        str(model_dir),
        "--out",
        str(out),
        "--stall-timeout",
        "1",
        "--report",
        "--set",
        "predict.live_part_snippets=25",
        "--set",
        "predict.live_flush_seconds=0.05",
    )
    assert res.exit_code == 0, res.output
    parts = sorted(out.glob("scenes.*.json"), key=lambda p: json.loads(p.read_text())["live"]["part"])
    docs = [json.loads(p.read_text()) for p in parts]
    assert [d["live"]["part"] for d in docs] == [0, 1, 2] and parts[1].name.endswith(".part0001.json")
    assert [(d["live"]["first_snippet"], d["snippets"]) for d in docs] == [(0, 25), (25, 25), (50, 20)]
    assert all(d["live"]["final"] for d in docs)
    ends = [x for x in lines_of(res.stdout) if x["type"] == "event_end"]
    assert [event_key(e) for d in docs for e in d["events"]] == [
        event_key(e) for e in ends
    ]  # each in the part it ended
    assert (
        live(
            str(stream_file),
            "--model",
            str(model_dir),
            "--out",
            str(tmp_path / "whole"),
            "--stall-timeout",
            "1",
        ).exit_code
        == 0
    )
    [whole] = [json.loads(p.read_text()) for p in (tmp_path / "whole").glob("scenes.*.json")]
    np.testing.assert_allclose(
        sum((d["snippet_scores"] for d in docs), []), whole["snippet_scores"], atol=1e-5
    )
    page = (out / "index.html").read_text()
    assert page.count('class="video"') == 3 and "part 2 from snippet 50" in page
    [day] = read_histograms(open_location(str(out)))  # the session's scores, for `cplvad monitor`
    assert (day.source, day.inputs) == (stream_file.parent.name, 1)
    assert day.counts.tolist() == score_histogram(sum((d["snippet_scores"] for d in docs), []))


def test_a_resolution_change_is_rescaled_and_said(model_dir, tmp_path):
    path = write_stream(tmp_path / "cam.ts", [(160, 999, W, ()), (320, 999, 2 * W, (PLANTED,))])
    res = live(str(path), "--model", str(model_dir), "--out", str(tmp_path / "o"), "--stall-timeout", "1")
    assert res.exit_code == 0, res.output
    assert (
        f"the frame size changed from {W}x{H} to {2 * W}x{2 * H} at frame 168; frames are rescaled to the "
        f"first size, {W}x{H}"
    ) in " ".join(res.stderr.split())
    lines = lines_of(res.stdout)
    assert lines[-1]["snippets"] == 30
    [end] = [x for x in lines if x["type"] == "event_end"]  # the glitch of the second part, at frames 290-350
    assert end["class"] == "Glitch" and 16 <= end["start_snippet"] <= 19 <= end["end_snippet"] <= 23


def test_feature_files_plots_and_latencies_beyond_the_window_are_refused(model_dir, tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((40, 64), np.float32))
    res = live(str(tmp_path / "f.npy"), "--model", str(model_dir), "--out", str(tmp_path / "o"))
    assert res.exit_code == 1 and "feature files are not live sources" in res.output
    res = CliRunner().invoke(
        cli,
        [
            "predict",
            "--live",
            "--plot",
            str(tmp_path / "f.npy"),
            "--model",
            str(model_dir),
            "--out",
            str(tmp_path / "o"),
            *CLI,
        ],
    )
    assert res.exit_code == 2 and "cannot be combined with --stream or --plot" in res.output
    res = CliRunner().invoke(
        cli,
        [
            "predict",
            "--live",
            f"tcp://127.0.0.1:{free_port()}",
            "--model",
            str(model_dir),
            "--out",
            str(tmp_path / "o"),
            *CLI,
            "--latency",
            "32",
        ],
    )
    assert res.exit_code == 2 and "--latency 32" in res.output and "between 0 and 31" in res.output


def test_a_model_whose_clip_does_not_match_its_features_stops_before_any_source_is_read(model_dir, tmp_path):
    clip_dir = tmp_path / "clips"
    clip_dir.mkdir()
    tiny = json.loads((REPO / "src/cplvad/clip_configs/cplvad-tiny.json").read_text())
    (clip_dir / "cplvad-tiny32.json").write_text(json.dumps({**tiny, "embed_dim": 32}))
    other = tmp_path / "other"
    other.mkdir()
    for name in ("model.pt", "meta.json"):
        (other / name).write_bytes((model_dir / name).read_bytes())
    cfg = json.loads((model_dir / "config.json").read_text())
    (other / "config.json").write_text(
        json.dumps({**cfg, "clip": {**cfg["clip"], "model": "cplvad-tiny32", "config_dir": str(clip_dir)}})
    )
    port = free_port()
    res = live(f"tcp://127.0.0.1:{port}", "--model", str(other), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2 and "scores 64-d features but its CLIP (cplvad-tiny32) gives 32-d" in " ".join(
        res.output.split()
    )
    assert not (tmp_path / "o").exists()  # nothing was scored or written


# ------------------------------------------------------------------------------------------------- webhooks


class HookServer(http.server.ThreadingHTTPServer):
    """A webhook endpoint on 127.0.0.1 that records every POST. It answers ``status`` (None: it hangs up
    without an answer); a held one answers nothing until the test sets ``released``: the test, not the clock,
    decides when the endpoint answers."""

    def __init__(self, status: int | None, held: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.status = status
        self.received: list[dict] = []
        self.arrived = threading.Condition()
        self.released = threading.Event()
        if not held:
            self.released.set()
        self.url = f"http://127.0.0.1:{self.server_address[1]}/events"

    def wait_for_requests(self, count: int) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= count, timeout=120), self.received


class _Hook(http.server.BaseHTTPRequestHandler):
    server: HookServer

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.arrived:
            self.server.received.append(json.loads(body))
            self.server.arrived.notify_all()
        self.server.released.wait()
        if self.server.status is not None:
            self.send_response(self.server.status)
            self.end_headers()

    def log_message(self, *args) -> None:
        pass


@contextmanager
def hook_server(status: int | None = 200, held: bool = False) -> Iterator[HookServer]:
    server = HookServer(status, held)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.released.set()
        server.shutdown()
        server.server_close()


class Log:
    """A ``log`` callable whose lines a test can wait for."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def __call__(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def wait_for(self, fragment: str) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: any(fragment in x for x in self.lines), timeout=120), (
                self.lines
            )


def returns_while_held(call: Callable[[], object]) -> None:
    """Run ``call`` while the endpoint holds a request: it must return without waiting for that request (in a
    thread, so that a call that does wait fails the test instead of hanging it)."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "post() waited for the endpoint"


def test_webhook_gets_every_event_line(model_dir, stream_file, tmp_path):
    with hook_server() as server:
        res = live(
            str(stream_file),
            "--model",
            str(model_dir),
            "--out",
            str(tmp_path / "o"),
            "--stall-timeout",
            "1",
            "--webhook",
            server.url,
        )
    assert res.exit_code == 0, res.output
    events = [x for x in lines_of(res.stdout) if x["type"].startswith("event_")]
    assert len(events) == 4 and server.received == events
    assert f"webhook {server.url}: 4 delivered, 0 failed, 0 dropped" in " ".join(res.stderr.split())


def test_posting_never_waits_for_a_refusing_webhook():
    log = Log()
    with hook_server(503, held=True) as server:
        hook = Webhook(server.url, log, timeout=60, retries=2, backoff=0.05)
        hook.post({"type": "event_end", "event": 0})
        server.wait_for_requests(1)  # the endpoint holds the first attempt unanswered...
        returns_while_held(lambda: [hook.post({"type": "event_end", "event": i}) for i in (1, 2)])
        assert hook.stats == WebhookStats() and log.lines == []  # ...and posting went on
        server.released.set()
        stats = hook.close(wait=120)
    assert stats == WebhookStats(failed=3)
    assert [e["event"] for e in server.received] == [
        0,
        0,
        0,
        1,
        1,
        1,
        2,
        2,
        2,
    ]  # 1 + 2 retries each, in order
    gave_up = (
        f"webhook {server.url}: gave up on a event_end line after 3 attempt(s) (HTTP 503 Service Unavailable)"
    )
    assert log.lines == [gave_up] * 3


def test_a_hanging_webhook_drops_what_does_not_fit_its_queue_and_times_out():
    log = Log()
    with hook_server(None, held=True) as server:  # hangs up unanswered, once released
        hook = Webhook(server.url, log, timeout=60, retries=0, queue_size=2)
        hook.post({"type": "event_start", "event": 0})
        server.wait_for_requests(1)
        returns_while_held(lambda: [hook.post({"type": "event_start", "event": i}) for i in range(1, 5)])
        assert hook.stats == WebhookStats(dropped=2)  # events 1 and 2 wait in the queue, 3 and 4 do not fit
        assert log.lines == [f"webhook {server.url}: 2 events are waiting; an event was dropped"] * 2
        server.released.set()
        stats = hook.close(wait=120)
    assert stats == WebhookStats(failed=3, dropped=2) and [e["event"] for e in server.received] == [0, 1, 2]
    assert "(Remote end closed connection without response)" in log.lines[-1]

    log = Log()
    with hook_server(None, held=True) as server:  # never answers: each attempt ends after `timeout`
        hook = Webhook(server.url, log, timeout=0.2, retries=1, backoff=0.01)
        hook.post({"type": "event_end"})
        log.wait_for("gave up")
        assert len(server.received) == 2
        assert log.lines == [
            f"webhook {server.url}: gave up on a event_end line after 2 attempt(s) (timed out)"
        ]
        assert hook.close(wait=120) == WebhookStats(failed=1)


def test_a_webhook_nobody_listens_on_fails_each_event_after_its_retries():
    log = Log()
    with refused_address() as address:
        url = address.replace("tcp://", "http://") + "/"
        hook = Webhook(url, log, timeout=60, retries=1, backoff=0.01)
        hook.post({"type": "event_end"})
        assert hook.close(wait=120) == WebhookStats(failed=1)
    [line] = log.lines
    assert line.startswith(f"webhook {url}: gave up on a event_end line after 2 attempt(s) (") and (
        "Connection refused" in line
    )


# ------------------------------------------------------------------------------------------------ stopping


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_a_summary(model_dir, stream_file, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
    }
    # 480 frames (30 snippets) in real time, then a connection kept open with nothing sent until the reader
    # hangs up: the session cannot end before the stop, however fast or slow the machine
    with publishing(stream_file, "--fps", "50", "--serve", "0:480", "--hold", "120") as (url, _):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from cplvad.cli import main; main()",
                "predict",
                "--live",
                url,
                "--model",
                str(model_dir),
                "--out",
                str(tmp_path / "o"),
                *FAST,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        first = proc.stdout.readline()  # the first event starts at snippet 7
        assert json.loads(first)["type"] == "event_start", proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = lines_of(first + out)
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["ended"] == "stopped"
    assert lines[0]["received_snippets"] <= summary["snippets"] <= 30  # what came before the stop, at most
    assert lines[1]["type"] == "event_end"  # the open event is closed by the stop
    assert "SIGTERM: stopping" in err
    doc = json.loads(Path(summary["report"]).read_text())
    assert doc["live"]["final"] and doc["snippets"] == summary["snippets"]
