"""Publish a video file as a live MPEG-TS stream on ``tcp://127.0.0.1:PORT`` (FFmpeg through PyAV, listening
for one client), for the live-scoring tests and ``benchmarks/bench_live.py``:

    python tests/stream_publisher.py FILE --port PORT [--fps F] [--start N] [--stop N] [--hold S]

The packets of FILE's video stream are copied (not re-encoded), so a client decodes exactly the frames of
FILE; packets [start, stop) are sent (``start`` must be a key frame), paced at ``--fps`` frames per second
(0: as fast as the client reads). When the client has connected, one JSON line ``{"t0": <time.time() when
packet start was sent>, "fps": F}`` goes to stdout; the stream ends (the connection closes) after packet ``stop``,
or, with ``--hold S``, S seconds later (a stalled source: connected, sending nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import av


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--fps", type=float, default=0.0)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--stop", type=int, default=None)
    ap.add_argument("--hold", type=float, default=0.0)
    args = ap.parse_args()
    with av.open(args.file) as src:
        video = src.streams.video[0]
        url = f"tcp://127.0.0.1:{args.port}?listen=1&listen_timeout=60000"
        with av.open(url, "w", format="mpegts", options={"flush_packets": "1"}) as out:
            stream = out.add_stream_from_template(video)
            t0 = None
            for i, packet in enumerate(p for p in src.demux(video) if p.size):
                if i < args.start:
                    continue
                if args.stop is not None and i >= args.stop:
                    break
                if t0 is not None and args.fps:
                    time.sleep(max(0.0, t0 + (i - args.start) / args.fps - time.time()))
                packet.stream = stream
                out.mux(packet)  # the first one waits for the client to connect
                if t0 is None:
                    t0 = time.time()
                    print(json.dumps({"t0": t0, "fps": args.fps}), flush=True)
            time.sleep(args.hold)
    print(f"published packets {args.start}..{i}", file=sys.stderr)


if __name__ == "__main__":
    main()
