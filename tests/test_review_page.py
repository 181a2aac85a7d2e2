"""The review page (``cplvad report OUT`` / ``predict --report``): its HTML (Jinja2 templates, any file name),
the event clips, ``--serve``, and the page itself in headless Chromium (Debian's ``chromium``, driven over the
DevTools protocol with websocket-client): ranking, filters, event list, the player, playing a clip, verdicts
kept in local storage and exported, with a screenshot kept in the test's folder."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import av
import pytest
from click.testing import CliRunner
from glitch import CLI, FPS, PLANTED, scene

from cplvad.cli import cli
from cplvad.extract.demo_videos import write_video
from cplvad.feedback.verdicts import read_verdicts
from cplvad.io import write_text
from cplvad.predict.review_server import review_server
from cplvad.storage.ownership import claim_folder

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
SCREENSHOT_COPY = os.environ.get("CPLVAD_REVIEW_SCREENSHOT")
"""Where to copy the screenshot of the page with verdicts and a playing clip, for a person to look at
(optional)."""
CONTEXT_FRAMES = round(3.0 * FPS)
"""predict.clip_context_s (3 s) of context before and after an event in its clip."""


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
    finally:
        browser.close()


def frames_and_codec(path: Path) -> tuple[int, str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for _ in container.decode(stream)), stream.codec_context.name


def test_every_event_gets_a_playable_clip_with_context(predictions):
    found = docs(predictions)
    page = (predictions / "index.html").read_text()
    for name, doc in found.items():
        clips = sorted((predictions / "clips" / name).glob("*.mp4")) if doc["events"] else []
        assert len(clips) == len(doc["events"])
        for clip, event in zip(clips, doc["events"]):
            a = max(0, event["start_frame"] - CONTEXT_FRAMES)
            b = min(doc["frames"], event["end_frame"] + CONTEXT_FRAMES)
            assert clip.name.startswith(f"{doc['events'].index(event):03d}-{a}-{b}-")
            assert frames_and_codec(clip) == (b - a, "h264")  # H.264 in MP4: what browsers play
            assert f'src="clips/{name}/{clip.name}"' in page
    assert 'class="y-axis"' in page and ">threshold 0.500</span>" in page  # the score axis, the threshold

    # a second report encodes nothing again; clips of events that no longer exist are removed
    kept = {p: p.stat().st_mtime_ns for p in (predictions / "clips").rglob("*.mp4")}
    stale = predictions / "clips" / "double" / "007-1-2-0123456789.mp4"
    with claim_folder(predictions):  # a clip an earlier report wrote for an event that is gone
        write_text(stale, "old")
    assert CliRunner().invoke(cli, ["report", str(predictions)]).exit_code == 0
    assert not stale.exists() and {p: p.stat().st_mtime_ns for p in kept} == kept
    bare = CliRunner().invoke(cli, ["report", str(predictions), "--no-clips"])
    assert bare.exit_code == 0 and "clips/" not in (predictions / "index.html").read_text()
    assert CliRunner().invoke(cli, ["report", str(predictions)]).exit_code == 0  # as the other tests expect


def test_any_file_name_renders_in_the_page_and_the_index(model_dir, predictions, tmp_path):
    """A Linux file name that is not UTF-8 (byte 0xff) is shown as ``\xff``, linked percent-encoded, and
    kept exactly in the page's data, so that a verdict names its document."""
    video = tmp_path / "videos" / "cam\udcff <b>.webm"  # b"cam\xff <b>.webm" on disk
    video.parent.mkdir()
    shutil.copy(predictions.parent / "videos" / "single.webm", video)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli,
        [
            "predict",
            str(video),
            "--model",
            str(model_dir),
            "--out",
            str(out),
            "--threshold",
            "0.5",
            "--report",
            *CLI,
        ],
    )
    assert res.exit_code == 0, res.output
    assert os.fsencode(out / "cam\udcff <b>.json").endswith(b"/cam\xff <b>.json")
    page = (out / "index.html").read_bytes().decode("utf-8")  # valid UTF-8
    assert "cam\\xff &lt;b&gt;" in page and "<b>" not in page  # escaped by the templates
    assert "clips/cam%FF%20%3Cb%3E/000-" in page and 'src="../videos/cam%FF%20%3Cb%3E.webm"' in page
    start = page.index('id="page-data">') + len('id="page-data">')
    data = json.loads(page[start : page.index("</script>", start)])
    assert data["videos"][0]["key"] == "cam\udcff <b>.json"
    index = json.loads((out / "index.json").read_text())
    assert index["videos"][0]["name"] == "cam\udcff <b>"
    doc = json.loads((out / "cam\udcff <b>.json").read_text())
    verdicts = tmp_path / "verdicts.json"
    event = doc["events"][0]
    verdicts.write_text(
        json.dumps(
            {
                "schema": "cplvad-verdicts/1",
                "predictions": data["predictions"],
                "videos": [
                    {
                        "key": data["videos"][0]["key"],
                        "video": None,
                        "events": [
                            {
                                "event": 0,
                                "start_frame": event["start_frame"],
                                "end_frame": event["end_frame"],
                                "verdict": "false_alarm",
                                "class": None,
                            }
                        ],
                    }
                ],
            }
        )
    )
    [judged] = read_verdicts(verdicts).videos
    assert judged.name == "cam\udcff <b>" and judged.doc["input"] == str(video)


def test_serve_saves_the_verdicts_into_the_folder(predictions, tmp_path):
    folder = tmp_path / "served"
    shutil.copytree(predictions, folder)
    saved: list[str] = []
    server = review_server(folder, 0, log=saved.append)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def post(body: bytes) -> int:
        request = urllib.request.Request(
            f"{base}/verdicts", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    with claim_folder(folder):  # as `cplvad report --serve` holds it
        try:
            with urllib.request.urlopen(f"{base}/index.html", timeout=30) as r:
                assert b'id="export-verdicts"' in r.read()
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(f"{base}/verdicts", timeout=30)  # nothing saved yet
            doc = {
                "schema": "cplvad-verdicts/1",
                "predictions": str(folder),
                "videos": [{"key": "quiet.json"}],
            }
            assert post(json.dumps(doc).encode()) == 200
            assert json.loads((folder / "verdicts.json").read_text()) == doc and saved
            with urllib.request.urlopen(f"{base}/verdicts", timeout=30) as r:
                assert json.load(r) == doc
            assert post(b"not json") == 400 and post(b'{"schema": "other"}') == 400
            assert json.loads((folder / "verdicts.json").read_text()) == doc  # refused bodies change nothing
            again = CliRunner().invoke(cli, ["report", str(folder)])  # the verdicts are no prediction
            assert again.exit_code == 0 and "review page of 3 prediction(s)" in " ".join(again.output.split())
        finally:
            server.shutdown()
            server.server_close()


@pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium; .ci/run does)"
)
def test_clips_play_and_verdicts_are_kept_and_exported_in_headless_chromium(predictions, tmp_path):
    found = docs(predictions)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser = DevTools(tmp_path / "profile")
    row = ".video[data-name=double] .event[data-event='{}']"

    def click(selector: str) -> None:
        browser.js(f"document.querySelector({json.dumps(selector)}).click()")

    def load() -> None:
        browser.call("Page.navigate", url=(predictions / "index.html").as_uri())
        assert browser.wait_for(
            "document.readyState === 'complete' && document.querySelectorAll('.video').length"
        )

    try:
        browser.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
        load()
        # the clip of the second event of "double" plays: its position advances
        clip = row.format(1) + " video.clip"
        assert browser.js(f"document.querySelector({json.dumps(clip)}).play().then(() => true)")
        position = browser.wait_for(
            f"(() => {{ const c = document.querySelector({json.dumps(clip)}); "
            "return c.currentTime > 1 && !c.error && c.currentTime; })()"
        )
        assert position and position > 1

        # one event marked false alarm, one confirmed (as Glitch), one video reviewed
        click(row.format(0) + " .event-verdict[data-verdict=false_alarm]")
        click(row.format(1) + " .event-verdict[data-verdict=confirmed]")
        click(".video[data-name=quiet] .video-verdict-button[data-verdict=reviewed]")
        assert browser.js("document.getElementById('verdict-count').textContent") == "3 verdicts"
        assert browser.js(f"document.querySelector({json.dumps(row.format(0))}).className") == (
            "event verdict-false_alarm"
        )
        shot = tmp_path / "verdicts.png"
        shot.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))
        if SCREENSHOT_COPY:
            shutil.copy(shot, SCREENSHOT_COPY)

        # kept in the browser: a reload shows them again
        load()
        assert browser.js("document.getElementById('verdict-count').textContent") == "3 verdicts"
        assert "verdict-confirmed" in browser.js(
            f"document.querySelector({json.dumps(row.format(1))}).className"
        )
        assert browser.js("document.querySelector('.video[data-name=quiet]').classList.contains('reviewed')")

        # exported as one JSON file, exactly what was clicked
        click("#export-verdicts")
        deadline = time.monotonic() + 30
        target = downloads / "verdicts.json"
        while not target.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        exported = json.loads(target.read_text())
    finally:
        browser.close()
    assert exported["schema"] == "cplvad-verdicts/1" and exported["predictions"] == str(predictions.resolve())
    videos = {v["key"]: v for v in exported["videos"]}
    assert set(videos) == {"double.json", "quiet.json"}
    double = found["double"]["events"]
    assert videos["double.json"]["video"] is None and videos["double.json"]["events"] == [
        {
            "event": k,
            "start_frame": double[k]["start_frame"],
            "end_frame": double[k]["end_frame"],
            "predicted_class": double[k]["class"],
            "verdict": verdict,
            "class": cls,
        }
        for k, verdict, cls in ((0, "false_alarm", None), (1, "confirmed", "Glitch"))
    ]
    assert videos["quiet.json"]["video"] == "reviewed" and videos["quiet.json"]["events"] == []
    judged = {v.name: v for v in read_verdicts(target).videos}  # what `cplvad feedback add` reads
    assert [(e.event, e.verdict, e.label) for e in judged["double"].events] == [
        (0, "false_alarm", None),
        (1, "confirmed", "Glitch"),
    ]
