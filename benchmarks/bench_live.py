"""Live scoring (``cplvad predict --live``): event latency and throughput (not a test; prints figures).

    .venv/bin/python benchmarks/bench_live.py [--latencies 2,8,24] [--seconds 60]

Everything goes through the real path: ``tests/stream_publisher.py`` serves a video as an MPEG-TS stream on
tcp://127.0.0.1 (packets copied, so the client decodes exactly the file's frames) and ``cplvad predict
--live`` runs as a separate process reading it, on the CPU, with one decode thread beside the scoring loop.

- Event latency: the glitch model of the tests (tests/glitch.py: tiny CLIP, n = 32) on a ``--seconds`` long
  48x32 stream with three planted anomalies, published in real time (25 fps), at the user threshold 0.5. For each event: seconds from
  the moment its last frame was sent to the moment its ``event_end`` line was read. The wait for context is
  (latency + 1) snippets = (latency + 1) x 0.64 s at 25 fps; the rest is decoding, encoding and scoring.
- Throughput: the same stream, and a 320x240 H.264 stream (UCF-like synthetic scenes) through a demo-sized
  model (``cplvad-demo`` CLIP, width 128, n = 192, random weights: the speed does not depend on them),
  published as fast as the scorer reads. Real-time factor = seconds of video / wall seconds from the first
  packet to the ``summary`` line, less the wait for the (failed) reconnection at the end (so a run of well
  under a second is only a rough figure: lengthen it with ``--throughput-seconds``).

Torch's threads: on a machine busy with other work, ``OMP_NUM_THREADS=1`` (one torch thread per process)
was 3x faster here than the default of one per core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import make_videos  # noqa: E402
from bench_predict import build_model  # noqa: E402
from glitch import FPS, scene, train_glitch_model  # noqa: E402

from cplvad.clip import create_clip  # noqa: E402
from cplvad.config import load_config  # noqa: E402

PUBLISHER = REPO / "tests" / "stream_publisher.py"
BACKOFF = 0.2
"""Wait before the one reconnection attempt after the stream ends (left out of the throughput)."""


def stream_file(path: Path, seconds: float) -> tuple[Path, list[tuple[int, int]]]:
    """An MPEG-TS glitch scene of ``seconds`` with three anomalies of 60 frames, at 15, 40 and 65 % of it (the
    last third leaves 24 snippets of context after the last one in a 60 s stream)."""
    frames = int(seconds * FPS)
    anomalies = [(int(frames * at), int(frames * at) + 60) for at in (0.15, 0.40, 0.65)]
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.codec_context.gop_size = 16
        stream.bit_rate = int(0.6 * 48 * 32 * FPS)
        for frame in scene(frames, 7, tuple(anomalies)):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path, anomalies


def run_live(video: Path, model: Path, out: Path, latency: int, fps: float, extra: list[str]) -> dict:
    """Publish ``video`` (paced at ``fps``; 0 = as fast as read), score it live; lines with their read times."""
    publisher = subprocess.Popen(
        [sys.executable, str(PUBLISHER), str(video), "--fps", str(fps)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    port = json.loads(publisher.stdout.readline())["port"]  # it listens
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    live = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cplvad.cli import main; main()",
            "predict",
            "--live",
            f"tcp://127.0.0.1:{port}",
            "--model",
            str(model),
            "--out",
            str(out),
            "--latency",
            str(latency),
            "--device",
            "cpu",
            "--workers",
            "0",
            "--reconnect-attempts",
            "1",
            "--set",
            f"predict.reconnect_backoff={BACKOFF}",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[tuple[float, dict]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.time(), json.loads(x)) for x in live.stdout))
    reader.start()
    t0 = json.loads(publisher.stdout.readline())["t0"]
    live.wait(timeout=3600)
    reader.join()
    publisher.wait(timeout=60)
    if live.returncode:
        raise RuntimeError(live.stderr.read())
    return {"t0": t0, "lines": lines}


def latency_table(args: argparse.Namespace, root: Path) -> None:
    model = train_glitch_model(root / "glitch")
    video, anomalies = stream_file(root / "glitch.ts", args.seconds)
    print(
        f"\nevent latency: glitch model (n = 32), a {args.seconds:g} s stream of 48x32 at {FPS} fps published in "
        f"real time, anomalies at frames {anomalies}"
    )
    print(f"{'latency':>8} {'events':>7} {'wait for context':>17} {'latency mean':>13} {'min':>6} {'max':>6}")
    for k in args.latencies:
        result = run_live(video, model, root / f"out-{k}", k, FPS, ["--threshold", "0.5"])
        total = result["lines"][-1][1]["snippets"]
        ends = [
            (t, x) for t, x in result["lines"] if x["type"] == "event_end" and x["end_snippet"] + k < total
        ]
        delays = [
            t - (result["t0"] + (x["end_frame"] - 1) / FPS) for t, x in ends
        ]  # not those ended by the end
        print(
            f"{k:>8} {len(ends):>7} {(k + 1) * 16 / FPS:>15.2f} s {np.mean(delays):>11.2f} s {min(delays):>5.2f}s "
            f"{max(delays):>5.2f}s"
        )


def throughput_table(args: argparse.Namespace, root: Path) -> None:
    print(
        "\nthroughput: published as fast as the scorer reads; real-time factor = video seconds / wall seconds"
    )
    glitch_model = root / "glitch" / "model"
    glitch_video, _ = stream_file(root / "long.ts", args.throughput_seconds)
    config = load_config(
        REPO / "params.yaml", ["clip.model=cplvad-demo", "extract.device=cpu", "train.device=cpu"]
    )
    demo_model = build_model(config, root / "demo-model", create_clip(config.clip).embed_dim)
    h264 = next(make_videos(root / "ucf", 1, 1, int(args.throughput_seconds * 30), 320, 240, 1).iterdir())
    cases = [
        ("glitch model, 48x32 mpeg4, 25 fps", glitch_video, glitch_model, args.throughput_seconds),
        ("demo-sized model, 320x240 H.264, 30 fps", h264, demo_model, args.throughput_seconds),
    ]
    print(f"{'case':<42} {'latency':>8} {'snippets':>9} {'wall s':>8} {'real-time factor':>17}")
    for name, video, model, seconds in cases:
        for k in args.latencies:
            result = run_live(video, model, root / f"tp-{k}", k, 0, ["--threshold", "0.5"])
            last, summary = result["lines"][-1]
            wall = last - result["t0"] - BACKOFF
            print(f"{name:<42} {k:>8} {summary['snippets']:>9} {wall:>8.2f} {seconds / wall:>16.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--latencies", default="2,8,24", help="--latency values (default: the default 2, then 8 and 24)"
    )
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the real-time stream")
    ap.add_argument(
        "--throughput-seconds", type=float, default=120.0, help="length of the throughput streams"
    )
    args = ap.parse_args()
    args.latencies = [int(x) for x in args.latencies.split(",")]
    print(
        f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="cplvad-bench-live-") as tmp:
        latency_table(args, Path(tmp))
        throughput_table(args, Path(tmp))


if __name__ == "__main__":
    main()
