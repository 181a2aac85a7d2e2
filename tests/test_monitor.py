"""Drift monitoring (``cplvad.monitor``): the daily score histograms that scoring jobs keep, the PSI / KS
figures, and ``cplvad monitor`` flagging a source whose scores moved, with its table, plot and webhook
(a local HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from click.testing import CliRunner

from cplvad.cli import cli
from cplvad.modeling.factory import read_model_config
from cplvad.monitor.drift import ks_statistic, psi
from cplvad.monitor.histograms import (
    BINS,
    EDGES,
    HistogramKeeper,
    read_histograms,
    score_histogram,
    source_of,
    utc_day,
)
from cplvad.storage.location import open_location
from cplvad.storage.ownership import claim_folder


def test_psi_and_ks_by_hand():
    same = [100] * BINS
    assert psi(same, same) == 0.0 and ks_statistic(same, same) == 0.0
    low, high = [200] + [0] * (BINS - 1), [0] * (BINS - 1) + [200]
    # two bins that swap all their snippets; every share is at least half a reference snippet, 1 / 400
    floor = 0.5 / 200
    assert psi(low, high) == pytest.approx(2 * (1 - floor) * np.log(1 / floor))
    assert psi(low, [100] + [0] * (BINS - 2) + [100]) == pytest.approx(
        (0.5 - floor) * np.log(0.5 / floor) + 0.5 * np.log(2)
    )
    assert psi([10] + [0] * (BINS - 1), [1000] + [0] * (BINS - 1)) == 0.0  # empty bins add nothing
    assert ks_statistic(low, high) == 1.0
    assert (
        ks_statistic([1, 1, 0, 0], [0, 0, 1, 1]) == 1.0 and ks_statistic([1, 1, 1, 1], [2, 0, 0, 2]) == 0.25
    )
    assert score_histogram([0.0, 0.049, 0.05, 0.999, 1.0, 1.5, -1]) == [3, 1] + [0] * (BINS - 3) + [3]


def test_sources_days_and_rescored_inputs(tmp_path):
    sink = open_location(str(tmp_path))
    model = {"version": "v1", "path": "m"}
    first = HistogramKeeper(sink, model, 0.5)
    first.add("cam1", "a", np.full(10, 0.1), when=0.0)  # 1970-01-01
    first.add("cam1", "b", np.full(5, 0.9), when=0.0)
    first.add("cam1", "a", np.full(3, 0.1), when=86_400.0)  # the next day
    first.flush()
    again = HistogramKeeper(sink, model, 0.5)  # another process scores "a" again the first day
    again.add("cam1", "a", np.full(4, 0.6), when=1.0)
    again.flush()
    days = {d.day: d for d in read_histograms(sink)}
    assert set(days) == {"1970-01-01", "1970-01-02"}
    jan1 = days["1970-01-01"]
    assert jan1.inputs == 2 and jan1.snippets == 4 + 5  # "a" counted once: its latest counts
    assert jan1.counts.tolist() == score_histogram([0.6] * 4 + [0.9] * 5)
    assert days["1970-01-02"].snippets == 3
    assert len(list(tmp_path.glob("monitor/cam1/1970-01-01/*.json"))) == 2  # one file per writer
    assert source_of("/x/night/cam7/0300.mp4", "video", "0300") == "cam7"
    assert source_of("s3://b/cam2/0300.mp4", "video", "0300") == "cam2"
    assert source_of("rtsp://cam3/live", "stream", "cam3-live") == "cam3-live"
    assert source_of("0300.mp4", "video", "0300") == "-"


def test_batch_scoring_keeps_daily_histograms_per_source(model_dir, tmp_path):
    dim = read_model_config(model_dir)[1].feature_dim
    rng = np.random.default_rng(0)
    for cam, name, t in (("cam1", "a", 40), ("cam1", "b", 30), ("cam2", "c", 20)):
        (tmp_path / "in" / cam).mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "in" / cam / f"{name}.npy", rng.standard_normal((t, dim)).astype(np.float32))
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "in"), "--model", str(model_dir), "--out", str(out), "--fps", "25"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert CliRunner().invoke(cli, [*args, "--rescore"]).exit_code == 0  # the same inputs once more
    days = {d.source: d for d in read_histograms(open_location(str(out)))}
    assert set(days) == {"cam1", "cam2"}
    assert (days["cam1"].inputs, days["cam1"].snippets, days["cam2"].snippets) == (2, 70, 20)
    scores = (
        json.loads((out / "a.json").read_text())["snippet_scores"]
        + json.loads((out / "b.json").read_text())["snippet_scores"]
    )
    assert days["cam1"].counts.tolist() == score_histogram(scores)
    assert days["cam1"].model["version"] == json.loads((out / "a.json").read_text())["model"]["version"]


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def webhook():
    handler = type("Hook", (_Hook,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", handler.received
    server.shutdown()
    server.server_close()


def _scores_like(counts: np.ndarray, n: int, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    """``n`` scores drawn from a histogram (uniform inside each bin), moved up by ``shift``."""
    bins = rng.choice(BINS, size=n, p=counts / counts.sum())
    return np.clip(EDGES[bins] + rng.uniform(0, 1 / BINS, n) + shift, 0, 1)


def test_monitor_flags_a_shifted_source_and_calls_the_webhook(model_dir, webhook, tmp_path):
    url, received = webhook
    _, meta = read_model_config(model_dir)
    reference = np.asarray(meta.extra["calibration"]["histogram"], dtype=np.float64)
    assert reference.sum() == meta.extra["calibration"]["snippets"]
    rng = np.random.default_rng(1)
    out = tmp_path / "out"
    with claim_folder(out):  # as a scoring job writes it
        keeper = HistogramKeeper(open_location(str(out)), {"version": "v1", "path": str(model_dir)}, 0.5)
        for day in range(3):
            when = 86_400.0 * (20_000 + day)
            keeper.add("steady", f"s{day}", _scores_like(reference, 3000, rng), when=when)
            moved = _scores_like(reference, 3000, rng, shift=0.3 * (day == 2))
            keeper.add("moved", f"m{day}", moved, when=when)
        keeper.add("quiet", "q", _scores_like(reference, 50, rng, shift=0.5))  # too few snippets to judge
        keeper.flush()

    res = CliRunner().invoke(cli, ["monitor", str(out), "--webhook", url], terminal_width=200)
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "drift in 1 source(s): moved" in text and "too few" in text
    rows = [line for line in res.output.splitlines() if line.startswith("│")]
    moved = [r for r in rows if "moved" in r]
    assert [("DRIFT" in r) for r in moved] == [False, False, True]
    assert not any("DRIFT" in r for r in rows if "steady" in r or "quiet" in r)
    assert (out / "monitor" / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "webhook http://127.0.0.1" in text and "1 delivered" in text
    [message] = received
    assert message["type"] == "drift" and message["source"] == "moved" and message["psi"] > 0.2
    last = utc_day(86_400.0 * 20_002)
    assert message["day"] == last and message["days_drifted"] == [last]
    assert message["psi_threshold"] == 0.2 and message["snippets"] == 3000

    calm = CliRunner().invoke(cli, ["monitor", str(out), "--days", "2", "--set", "monitor.psi_threshold=50"])
    assert calm.exit_code == 0 and "no source drifted" in calm.output
    empty = CliRunner().invoke(cli, ["monitor", str(tmp_path)])
    assert empty.exit_code == 2 and "holds no score histograms" in " ".join(empty.output.split())
