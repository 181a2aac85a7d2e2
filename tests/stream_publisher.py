"""Publish a video file as a live MPEG-TS stream on ``tcp://127.0.0.1:PORT`` (muxed by FFmpeg through PyAV),
for the live-scoring tests and ``benchmarks/bench_live.py``:

    python tests/stream_publisher.py FILE [--port PORT] [--fps F] [--serve A:B|- ...] [--hold S]

The publisher listens first (``--port 0``, the default: a free port the system picks) and says so on stdout,
one JSON line ``{"port": PORT}``: a caller waits for that line, not for a time. It then serves the
connections listed by ``--serve``, in order (default: one, the whole file): ``A:B`` sends packets
[A, B) of FILE's video stream (``A`` must be a key frame, ``B`` may be left out: to the end), copied, not
re-encoded, so a client decodes exactly the frames of FILE; ``-`` accepts a connection and closes it
unanswered (a failed attempt, for the client). The listening socket stays open from the first connection
to the last, so a client that reconnects is never refused in between, whatever the scheduling; it is
closed as soon as the last connection is accepted, so any later attempt is refused.

A connection's packets are read from FILE before it is accepted, so its first bytes follow at once. They
are paced at ``--fps`` frames per second (0: as fast as the client reads). When a connection has its
first packet, one JSON line ``{"t0": <time.time() when it was sent>, "fps": F}`` goes to stdout. A
connection ends after its last packet, or, with ``--hold S``, when the client closes it (at most S seconds
later): a stalled source, connected and sending nothing, for exactly as long as the client waits.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time

import av


class _Connection:
    """A client socket as the file PyAV writes to (every packet is flushed to it: ``flush_packets``)."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn

    def write(self, data: bytes) -> int:
        self.conn.sendall(data)
        return len(data)


def _span(text: str) -> tuple[int, int | None] | None:
    if text == "-":
        return None
    start, _, stop = text.partition(":")
    return int(start or 0), int(stop) if stop else None


def _packets(src: av.container.InputContainer, span: tuple[int, int | None]) -> list[av.Packet]:
    """Packets [start, stop) of the video stream, read before the client connects (it gets them at once)."""
    start, stop = span
    packets = (p for p in src.demux(src.streams.video[0]) if p.size)
    return [p for i, p in enumerate(packets) if i >= start and (stop is None or i < stop)]


def _send(
    conn: socket.socket, src: av.container.InputContainer, packets: list[av.Packet], fps: float
) -> None:
    with av.open(_Connection(conn), "w", format="mpegts", options={"flush_packets": "1"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        t0 = None
        for i, packet in enumerate(packets):
            if t0 is not None and fps:
                time.sleep(max(0.0, t0 + i / fps - time.time()))  # real-time pacing
            packet.stream = stream
            out.mux(packet)
            if t0 is None:
                t0 = time.time()
                print(json.dumps({"t0": t0, "fps": fps}), flush=True)


def _until_closed(conn: socket.socket, limit: float) -> None:
    """Wait for the client to close the connection (it never sends anything), at most ``limit`` seconds."""
    conn.settimeout(limit)
    try:
        while conn.recv(4096):
            pass
    except OSError:  # the limit, or a reset
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fps", type=float, default=0.0)
    ap.add_argument("--serve", nargs="+", type=_span, default=[(0, None)])
    ap.add_argument("--hold", type=float, default=0.0)
    args = ap.parse_args()
    listener = socket.create_server(("127.0.0.1", args.port))
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    for k, span in enumerate(args.serve):
        with av.open(args.file) as src:
            packets = _packets(src, span) if span is not None else []
            conn, _ = listener.accept()
            if k == len(args.serve) - 1:
                listener.close()  # nobody is served after the last connection: later attempts are refused
            with conn:
                if span is None:
                    continue
                try:
                    _send(conn, src, packets, args.fps)
                except (OSError, av.FFmpegError) as exc:  # the client went away
                    print(f"connection {k}: {exc}", file=sys.stderr)
                    continue
                if args.hold:
                    _until_closed(conn, args.hold)
        print(f"connection {k}: published packets {span[0]}..{span[0] + len(packets) - 1}", file=sys.stderr)


if __name__ == "__main__":
    main()
