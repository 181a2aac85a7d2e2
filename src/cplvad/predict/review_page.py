"""The review page: one self-contained ``index.html`` for a folder (or ``s3://`` prefix) of prediction
documents, so a night of footage is reviewed in one place, and the operators' verdicts are collected there.

Videos are ranked by their peak anomaly score. Each has its timeline (an inline SVG: the anomaly score per
snippet on a 0-1 axis, the model's threshold dashed and labelled, the events shaded in their class colour),
its event list (class, time, score, a playable clip of the event: ``cplvad.predict.clips``) and, when the
video file is reachable from the page (a local file: linked by its path relative to the page), a player
that jumps to an event. Two filters: a class (videos with an event of that class, or without any event)
and a minimum score (videos whose peak reaches it, events whose score does; the line on every timeline
follows it). Failed inputs of ``index.json`` are listed at the end.

Verdicts: per event "confirmed" (with its class, the predicted one by default) or "false alarm", per video
"reviewed, nothing missed" or "missed anomaly" (with a class). They are kept in the browser's local
storage (per prediction folder) and exported as one JSON file (schema ``cplvad-verdicts/1``, see
``cplvad.feedback.verdicts``) for ``cplvad feedback add``; ``cplvad report --serve`` also saves them
into ``OUT/verdicts.json``.

No server and nothing external: inline CSS and JavaScript, no fonts, no CDN; the page works from ``file://``.
It is rendered from the Jinja2 templates in ``templates/`` (autoescaped). Names may hold any bytes (a Linux
file name that is not UTF-8, read with ``surrogateescape``): the page shows such bytes as U+FFFD, links
them percent-encoded, and carries them exactly in its JSON data, so a verdict names the very document.
Timelines are downsampled to at most ``MAX_POINTS`` points by taking the maximum of each bin, so no peak
disappears.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from cplvad import __version__
from cplvad.io import NAME_ERRORS
from cplvad.predict.clips import ClipSettings, local_video, write_clips
from cplvad.predict.index import INDEX_FILE, read_index
from cplvad.predict.report import read_report
from cplvad.storage.location import Location
from cplvad.templates import asset
from cplvad.templates import render as render_template

PAGE_FILE = "index.html"
VERDICTS_FILE = "verdicts.json"
"""Where ``cplvad report --serve`` saves the verdicts (never read as a prediction document)."""
VERDICTS_SCHEMA = "cplvad-verdicts/1"
"""The verdicts the page exports (``cplvad.feedback.verdicts`` reads them)."""
MAX_POINTS = 600
WIDTH, HEIGHT = 1000, 100
"""SVG coordinates of a timeline (it is stretched to the page's width)."""
PALETTE = (
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#ff7f0e",
    "#2ca02c",
    "#7f7f7f",
    "#1f77b4",
)


def url(rel: str) -> str:
    """A relative link to a file whose name may hold any bytes."""
    return quote(rel.encode("utf-8", NAME_ERRORS))


def _video_url(doc: dict[str, Any], sink: Location) -> str | None:
    """The input's path relative to the page, when it is a local file that exists."""
    if sink.local is None:
        return None
    root = sink.local.resolve()
    path = local_video(doc, root, kinds=("video", "stream"))
    if path is None or "://" in path:
        return None
    return url(Path(os.path.relpath(Path(path).resolve(), root)).as_posix())


def _downsample(scores: np.ndarray) -> np.ndarray:
    if len(scores) <= MAX_POINTS:
        return scores
    bounds = np.linspace(0, len(scores), MAX_POINTS + 1).astype(int)
    return np.maximum.reduceat(scores, bounds[:-1])


def _when(e: dict[str, Any]) -> str:
    if e.get("start_s") is not None:
        return f"{e['start_s']:.1f}–{e['end_s']:.1f} s"
    return f"frames {e['start_frame']}–{e['end_frame']}"


def _points(scores: np.ndarray) -> str:
    xs = np.linspace(0, WIDTH, len(scores) + 1)
    return " ".join(
        f"{x:.1f},{HEIGHT * (1 - v):.1f}"
        for x, v in zip(np.repeat(xs, 2)[1:-1], np.repeat(scores, 2), strict=True)
    )


def _item(key: str, doc: dict[str, Any], sink: Location, clips: ClipSettings | None) -> dict[str, Any]:
    """What the template shows of one prediction document (``key``: its path under OUT)."""
    name = key[: -len(".json")]
    scores = np.asarray(doc.get("snippet_scores") or [0.0], dtype=np.float64)
    live = doc.get("live") or {}
    first, fps = int(live.get("first_snippet", 0)), doc.get("fps")
    frames = len(scores) * int(doc.get("frames_per_snippet") or 16)
    first_frame = int(live.get("first_frame", 0))
    made = write_clips(sink, name, doc, clips) if clips is not None else {}
    events = []
    for k, e in enumerate(doc.get("events") or []):
        x0 = (e["start_snippet"] - first) / max(len(scores), 1)
        x1 = (e["end_snippet"] - first) / max(len(scores), 1)
        clip = made.get(k)
        events.append(
            {
                **e,
                "label": e["class"],
                "x": WIDTH * x0,
                "w": max(WIDTH * (x1 - x0), 1.0),
                "when": _when(e),
                "clip": url(clip.rel) if clip else None,
                "clip_when": f"clip from {clip.start_s:.1f} s" if clip else "",
            }
        )

    def axis(at: float) -> str:
        frame = first_frame + at * frames
        return f"{frame / fps:.1f} s" if fps else f"frame {int(frame)}"

    classes = [str(c) for c in doc.get("classes") or []]
    threshold = float(doc.get("threshold") or 0.0)
    top = max(events, key=lambda e: e["score"])["label"] if events else "—"
    return {
        "key": key,
        "name": name,
        "input": str(doc.get("input")),
        "duration": f"{doc['duration_s']:.1f} s" if doc.get("duration_s") else "",
        "threshold": threshold,
        "threshold_y": HEIGHT * (1 - min(max(threshold, 0.0), 1.0)),
        "peak": float(scores.max()) if len(scores) else 0.0,
        "points": _points(_downsample(scores)),
        "events": events,
        "event_classes": sorted({e["label"] for e in events}),
        "abnormal_classes": classes[1:],
        "top_class": top,
        "video": _video_url(doc, sink),
        "axis_start": axis(0.0),
        "axis_end": axis(1.0),
        "model": str((doc.get("model") or {}).get("version")),
        "part": f" · part {live['part']} from snippet {live['first_snippet']}" if live else "",
    }


def collect(
    sink: Location, clips: ClipSettings | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every prediction document under the root (ranked by peak score), and the failed inputs of the index;
    with ``clips``, each event's clip is written (if missing) as well."""
    items = []
    for rel in sorted(sink.sizes()):
        if not rel.endswith(".json") or "/" in rel or rel in (INDEX_FILE, VERDICTS_FILE):
            continue
        doc = read_report(sink.read_bytes(rel))
        if doc is not None:
            items.append(_item(rel, doc, sink, clips))
    items.sort(key=lambda it: (-it["peak"], it["name"]))
    failed = [e for e in (read_index(sink) or {}).get("videos", []) if e.get("status") == "failed"]
    return items, failed


def render(items: list[dict[str, Any]], failed: list[dict[str, Any]], title: str, predictions: str) -> str:
    """The page's HTML; ``predictions`` (the folder's URI) is recorded in the exported verdicts."""
    classes = sorted({e["label"] for it in items for e in it["events"]})
    colours = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}
    for it in items:
        for e in it["events"]:
            e["colour"] = colours[e["label"]]
    page_data = {
        "predictions": predictions,
        "title": title,
        "videos": [
            {
                "key": it["key"],
                "name": it["name"],
                "input": it["input"],
                "model_version": it["model"],
                "events": [
                    {"start_frame": e["start_frame"], "end_frame": e["end_frame"], "class": e["label"]}
                    for e in it["events"]
                ],
            }
            for it in items
        ],
    }
    return render_template(
        "review.html",
        title=title,
        videos=items,
        failed=[{"input": str(e.get("input")), "error": str(e.get("error"))} for e in failed],
        event_classes=classes,
        event_count=sum(len(it["events"]) for it in items),
        version=__version__,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        width=WIDTH,
        height=HEIGHT,
        page_data=page_data,
        style=asset("review.css"),
        script=asset("review.js"),
    )


def write_review_page(sink: Location, title: str | None = None, clips: ClipSettings | None = None) -> str:
    """Write ``index.html`` at the root of ``sink`` (atomically / one PUT), and with ``clips`` the event
    clips it plays; returns where the page went."""
    items, failed = collect(sink, clips)
    root = sink.uri("").rstrip("/")
    predictions = str(Path(root).resolve()) if sink.local is not None else root
    name = title or f"cplvad review: {root}"
    sink.write_bytes(PAGE_FILE, render(items, failed, name, predictions).encode("utf-8"))
    return sink.uri(PAGE_FILE)
