"""The review page (``cplvad report OUT`` / ``predict --report``): its HTML, and the page itself in headless
Chromium (Debian's ``chromium``, driven over the DevTools protocol with websocket-client): ranking, filters,
event list and the player, with a screenshot kept in the test's folder."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from glitch import CLI, FPS, PLANTED, scene

from cplvad.cli import cli
from cplvad.extract.demo_videos import write_video

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
SCREENSHOT_COPY = os.environ.get("CPLVAD_REVIEW_SCREENSHOT")
"""Where to copy the screenshot, for a person to look at (optional)."""


@pytest.fixture(scope="module")
def predictions(model_dir, tmp_path_factory) -> Path:
    """Three WebM (VP8) videos scored into OUT = root/out; the videos are in root/videos (../videos from OUT)."""
    root = tmp_path_factory.mktemp("review")
    videos = {
        "double": (400, 995, ((60, 110), (250, 320))),
        "single": (320, 999, (PLANTED,)),
        "quiet": (320, 998, ()),
    }
    for name, (frames, seed, anomalies) in videos.items():
        (root / "videos").mkdir(exist_ok=True)
        write_video(root / "videos" / f"{name}.webm", scene(frames, seed, anomalies), fps=FPS, codec="libvpx")
    np_feats = root / "videos" / "features.npy"
    np_feats.write_bytes(b"not an array")  # a failed input, listed at the end of the page
    res = CliRunner().invoke(
        cli,
        [
            "predict",
            str(root / "videos"),
            "--model",
            str(model_dir),
            "--out",
            str(root / "out"),
            "--threshold",
            "0.5",
            "--report",
            *CLI,
        ],
    )
    assert res.exit_code == 1, res.output
    return root / "out"


def docs(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json") if p.name != "index.json"}


def test_the_page_ranks_videos_and_is_self_contained(predictions):
    page = (predictions / "index.html").read_text()
    found = docs(predictions)
    ranked = sorted(found, key=lambda k: -max(found[k]["snippet_scores"]))
    assert [page.index(f'data-name="{name}"') for name in ranked] == sorted(
        page.index(f'data-name="{n}"') for n in ranked
    )
    assert (
        len(found["double"]["events"]) == 2
        and len(found["single"]["events"]) == 1
        and not found["quiet"]["events"]
    )
    assert page.count('class="event"') == 3 and page.count("<svg") == 3
    assert 'src="../videos/single.webm"' in page and "features.npy" in page and "Failed inputs" in page
    for external in ("http://", "https://", "<link", "<script src", "@import", "url("):
        assert external not in page
    again = CliRunner().invoke(cli, ["report", str(predictions), "--title", "night of 3 May"])
    assert again.exit_code == 0 and "review page of 3 prediction(s)" in " ".join(again.output.split())
    assert "<title>night of 3 May</title>" in (predictions / "index.html").read_text()
    empty = CliRunner().invoke(cli, ["report", str(predictions / "nothing")])
    assert empty.exit_code == 2 and "is not a folder" in empty.output


class DevTools:
    """Just enough of the Chrome DevTools protocol: evaluate JavaScript, take a screenshot."""

    def __init__(self, profile: Path) -> None:
        import websocket

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "--window-size=1200,1500",
                "--autoplay-policy=no-user-gesture-required",
                "--mute-audio",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            assert self.proc.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg["result"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while not (value := self.js(expression)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return value

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


VISIBLE = "[...document.querySelectorAll('.video')].filter(v => !v.classList.contains('hidden')).map(v => v.dataset.name)"


@pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium; .ci/run does)"
)
def test_the_page_in_headless_chromium(predictions, tmp_path):
    found = docs(predictions)
    browser = DevTools(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=(predictions / "index.html").as_uri())
        assert browser.wait_for(
            "document.readyState === 'complete' && document.querySelectorAll('.video').length"
        )

        # ranking: highest peak first, numbered
        ranked = sorted(found, key=lambda k: -max(found[k]["snippet_scores"]))
        assert browser.js(VISIBLE) == ranked
        assert browser.js("[...document.querySelectorAll('.rank')].map(r => r.textContent)") == [
            "#1",
            "#2",
            "#3",
        ]

        # the event list of the video with two events: classes, times and scores from its JSON
        rows = browser.js(
            "[...document.querySelectorAll('.video[data-name=double] .event')].map(r => "
            "[...r.cells].slice(0, 3).map(c => c.textContent))"
        )
        assert rows == [
            [e["class"], f"{e['start_s']:.1f}–{e['end_s']:.1f} s", f"{e['score']:.2f}"]
            for e in found["double"]["events"]
        ]

        # filters: by class, then by minimum score
        def choose(cls: str) -> None:
            browser.js(
                f"{{ const s = document.getElementById('class-filter'); s.value = {json.dumps(cls)}; "
                "s.dispatchEvent(new Event('change')); }"
            )

        def set_threshold(value: float) -> float:
            """Set the slider; returns its value (snapped to its 0.01 steps)."""
            return browser.js(
                f"(() => {{ const t = document.getElementById('threshold'); t.value = {value}; "
                "t.dispatchEvent(new Event('input')); return parseFloat(t.value); })()"
            )

        choose("Glitch")
        assert browser.js(VISIBLE) == [n for n in ranked if found[n]["events"]]
        choose("")
        assert (
            browser.js(VISIBLE) == ["quiet"]
            and browser.js("document.getElementById('shown-count').textContent") == "1"
        )
        choose("*")
        low = min(max(found[n]["snippet_scores"]) for n in ("double", "single"))
        cut = round(
            (low + max(found["quiet"]["snippet_scores"])) / 2, 2
        )  # between the quiet video and the others
        cut = set_threshold(cut)
        assert browser.js(VISIBLE) == [n for n in ranked if n != "quiet"]
        assert float(
            browser.js("document.querySelector('.filter-threshold').getAttribute('y1')")
        ) == pytest.approx(100 * (1 - cut))
        scores = [e["score"] for e in found["double"]["events"]]
        strong = set_threshold((scores[0] + scores[1]) / 2)
        shown = browser.js(
            "[...document.querySelectorAll('.video[data-name=double] .event')]"
            ".filter(r => !r.classList.contains('hidden')).length"
        )
        assert shown == sum(x >= strong for x in scores) and (shown == 1 or abs(scores[0] - scores[1]) < 0.01)
        set_threshold(0)

        # the player jumps to the second event of "double"
        second = found["double"]["events"][1]
        browser.js("document.querySelectorAll('.video[data-name=double] .jump')[1].click()")
        position = browser.wait_for(
            "(() => { const p = document.querySelector('.video[data-name=double] .player'); "
            "return p.readyState >= 1 && p.currentTime > 0 && p.currentTime; })()"
        )
        assert position == pytest.approx(second["start_s"], abs=0.5)
        browser.js("document.querySelector('.video[data-name=double] .player').pause()")

        shot = tmp_path / "review.png"
        shot.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
        if SCREENSHOT_COPY:
            shutil.copy(shot, SCREENSHOT_COPY)
    finally:
        browser.close()
