"""The review page: one self-contained ``index.html`` for a folder (or ``s3://`` prefix) of prediction
documents, so a night of footage is reviewed in one place instead of one JSON and PNG per video.

Videos are ranked by their peak anomaly score. Each has its timeline (an inline SVG: the anomaly score per
snippet, the model's threshold dashed, the events shaded in their class colour), its event list (class,
time, score) and, when the video file is reachable from the page (a local file: linked by its path
relative to the page), a player that jumps to an event when the event or its span on the timeline is
clicked. Two filters: a class (videos with an event of that class, or without any event) and a minimum
score (videos whose peak reaches it, events whose score does; the line on every timeline follows it).
Failed inputs of ``index.json`` are listed at the end.

No server and nothing external: inline CSS and JavaScript, no fonts, no CDN; the page works from
``file://``. Timelines are downsampled to at most ``MAX_POINTS`` points by taking the maximum of each
bin, so no peak disappears.
"""

from __future__ import annotations

import html
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from cplvad import __version__
from cplvad.io import NAME_ERRORS
from cplvad.predict.index import INDEX_FILE, read_index
from cplvad.predict.report import read_report, utf8
from cplvad.storage.location import Location

PAGE_FILE = "index.html"
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


def _video_url(doc: dict[str, Any], sink: Location) -> str | None:
    """The input's path relative to the page, when it is a local file that exists."""
    if sink.local is None or doc.get("input_kind") not in ("video", "stream"):
        return None
    given = Path(str(doc.get("input")))
    root = sink.local.resolve()
    for candidate in [given] if given.is_absolute() else [Path.cwd() / given, root / given]:
        if candidate.is_file():
            return quote(Path(os.path.relpath(candidate.resolve(), root)).as_posix(), errors=NAME_ERRORS)
    return None


def _downsample(scores: np.ndarray) -> np.ndarray:
    if len(scores) <= MAX_POINTS:
        return scores
    bounds = np.linspace(0, len(scores), MAX_POINTS + 1).astype(int)
    return np.maximum.reduceat(scores, bounds[:-1])


def _item(name: str, doc: dict[str, Any], sink: Location) -> dict[str, Any]:
    scores = np.asarray(doc.get("snippet_scores") or [0.0], dtype=np.float64)
    live = doc.get("live") or {}
    first = int(live.get("first_snippet", 0))
    fps = doc.get("fps")
    events = []
    for e in doc.get("events") or []:
        events.append(
            {
                **e,
                "x0": (e["start_snippet"] - first) / max(len(scores), 1),
                "x1": (e["end_snippet"] - first) / max(len(scores), 1),
            }
        )
    return {
        "name": name,
        "input": str(doc.get("input")),
        "kind": doc.get("input_kind"),
        "fps": fps,
        "duration_s": doc.get("duration_s"),
        "threshold": float(doc.get("threshold") or 0.0),
        "peak": float(scores.max()) if len(scores) else 0.0,
        "scores": _downsample(scores),
        "events": sorted(events, key=lambda e: e["start_snippet"]),
        "video": _video_url(doc, sink),
        "first_frame": int(live.get("first_frame", 0)),
        "frames": len(scores) * int(doc.get("frames_per_snippet") or 16),
        "model": (doc.get("model") or {}).get("version"),
        "live": live,
    }


def collect(sink: Location) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every prediction document under the root (ranked by peak score), and the failed inputs of the index."""
    items = []
    for rel in sorted(sink.sizes()):
        if not rel.endswith(".json") or rel == INDEX_FILE:
            continue
        doc = read_report(sink.read_bytes(rel))
        if doc is not None:
            items.append(_item(rel[: -len(".json")], doc, sink))
    items.sort(key=lambda it: (-it["peak"], it["name"]))
    failed = [e for e in (read_index(sink) or {}).get("videos", []) if e.get("status") == "failed"]
    return items, failed


def _when(e: dict[str, Any]) -> str:
    if e.get("start_s") is not None:
        return f"{e['start_s']:.1f}–{e['end_s']:.1f} s"
    return f"frames {e['start_frame']}–{e['end_frame']}"


def _timeline(it: dict[str, Any], colours: dict[str, str]) -> str:
    s = it["scores"]
    xs = np.linspace(0, WIDTH, len(s) + 1)
    pts = " ".join(
        f"{x:.1f},{HEIGHT * (1 - v):.1f}"
        for x, v in zip(np.repeat(xs, 2)[1:-1], np.repeat(s, 2), strict=True)
    )
    spans = "".join(
        f'<rect class="span" data-event="{i}" x="{WIDTH * e["x0"]:.1f}" y="0" width="{max(WIDTH * (e["x1"] - e["x0"]), 1):.1f}" '
        f'height="{HEIGHT}" fill="{colours[e["class"]]}" fill-opacity="0.3"><title>{html.escape(e["class"])} '
        f"{_when(e)}, score {e['score']:.2f}</title></rect>"
        for i, e in enumerate(it["events"])
    )
    model_y = HEIGHT * (1 - it["threshold"])
    return (
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" '
        f'aria-label="anomaly score over time">{spans}'
        f'<line x1="0" x2="{WIDTH}" y1="{model_y:.1f}" y2="{model_y:.1f}" class="model-threshold"/>'
        f'<line x1="0" x2="{WIDTH}" y1="{HEIGHT}" y2="{HEIGHT}" class="filter-threshold"/>'
        f'<polyline points="{pts}" class="score"/></svg>'
        f'<div class="axis"><span>{_axis(it, 0.0)}</span><span>{_axis(it, 1.0)}</span></div>'
    )


def _axis(it: dict[str, Any], at: float) -> str:
    """The time at the left (0) or right (1) end of a timeline: seconds (frames without a frame rate)."""
    frame = it["first_frame"] + at * it["frames"]
    return f"{frame / it['fps']:.1f} s" if it["fps"] else f"frame {int(frame)}"


def _card(rank: int, it: dict[str, Any], colours: dict[str, str]) -> str:
    esc = html.escape
    classes = sorted({e["class"] for e in it["events"]})
    rows = "".join(
        f'<tr class="event" data-event="{i}" data-class="{esc(e["class"])}" data-score="{e["score"]:.6f}" '
        f'data-start="{e["start_s"] if e.get("start_s") is not None else ""}">'
        f'<td><span class="dot" style="background:{colours[e["class"]]}"></span>{esc(e["class"])}</td>'
        f"<td>{_when(e)}</td><td>{e['score']:.2f}</td><td>{e['class_probability']:.2f}</td>"
        f"<td>{'<button class=jump>▶ play</button>' if it['video'] and e.get('start_s') is not None else ''}</td></tr>"
        for i, e in enumerate(it["events"])
    )
    table = (
        f'<table class="events"><tr><th>class</th><th>when</th><th>score</th><th>P(class)</th><th></th></tr>'
        f"{rows}</table>"
        if rows
        else '<p class="none">no event above the model threshold</p>'
    )
    player = (
        f'<video class="player" controls preload="none" src="{esc(it["video"])}"></video>'
        if it["video"]
        else '<p class="none">video not reachable from this page</p>'
    )
    top = max(it["events"], key=lambda e: e["score"])["class"] if it["events"] else "—"
    duration = f"{it['duration_s']:.1f} s" if it["duration_s"] else ""
    part = f" · part {it['live']['part']} from snippet {it['live']['first_snippet']}" if it["live"] else ""
    return (
        f'<section class="video" data-name="{esc(it["name"])}" data-peak="{it["peak"]:.6f}" '
        f'data-classes="{esc(json.dumps(classes))}">'
        f'<h2><span class="rank">#{rank}</span> {esc(it["name"])} <span class="peak">peak {it["peak"]:.2f}</span>'
        f' <span class="top">{esc(top)}</span></h2>'
        f'<p class="meta">{esc(it["input"])} · {duration} · {len(it["events"])} event(s) · threshold '
        f"{it['threshold']:.3f} · model {esc(str(it['model']))}{esc(part)}</p>"
        f'{_timeline(it, colours)}<div class="body">{table}{player}</div></section>'
    )


STYLE = """
body{font:14px system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{position:sticky;top:0;background:#1f2933;color:#fff;padding:10px 18px;z-index:2}
header h1{font-size:18px;margin:0 0 6px}header label{margin-right:18px}
main{padding:12px 18px}.video{background:#fff;border-radius:6px;padding:10px 14px;margin:0 0 14px;
box-shadow:0 1px 3px rgba(0,0,0,.15)}.video h2{font-size:15px;margin:0}.rank{color:#888}
.peak{background:#fde2e2;border-radius:3px;padding:1px 6px;font-size:12px}.top{font-size:12px;color:#555}
.meta{color:#666;font-size:12px;margin:4px 0}.timeline{width:100%;height:80px;background:#fafafa;
border:1px solid #ddd;cursor:pointer}.score{fill:none;stroke:#1f77b4;stroke-width:1.5;vector-effect:non-scaling-stroke}
.model-threshold{stroke:#d62728;stroke-dasharray:6 4;vector-effect:non-scaling-stroke}
.filter-threshold{stroke:#333;stroke-width:1;vector-effect:non-scaling-stroke}
.axis{display:flex;justify-content:space-between;color:#888;font-size:11px}.body{display:flex;gap:16px;align-items:flex-start;margin-top:6px}.events{border-collapse:collapse;font-size:13px}
.events td,.events th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}.event.hidden{display:none}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:5px}
.player{width:320px;max-height:200px;background:#000}.none{color:#888;font-size:12px}.hidden{display:none}
.failed li{color:#a00}
"""

SCRIPT = """
(function(){
  const cls=document.getElementById('class-filter'), thr=document.getElementById('threshold'),
        val=document.getElementById('threshold-value'), shown=document.getElementById('shown-count');
  function apply(){
    const c=cls.value, t=parseFloat(thr.value); let n=0;
    val.textContent=t.toFixed(2);
    document.querySelectorAll('.video').forEach(v=>{
      const classes=JSON.parse(v.dataset.classes), peak=parseFloat(v.dataset.peak);
      const byClass=c==='*'||(c===''?classes.length===0:classes.includes(c));
      const ok=byClass&&peak>=t; v.classList.toggle('hidden',!ok); if(ok)n++;
      v.querySelectorAll('.event').forEach(e=>e.classList.toggle('hidden',parseFloat(e.dataset.score)<t));
      v.querySelectorAll('.filter-threshold').forEach(l=>{const y=100*(1-t);l.setAttribute('y1',y);l.setAttribute('y2',y);});
    });
    shown.textContent=n;
  }
  function jump(v,i){
    const row=v.querySelector('.event[data-event="'+i+'"]'), p=v.querySelector('.player');
    if(!row||!p||row.dataset.start==='')return;
    const t=parseFloat(row.dataset.start); p.dataset.seek=t;
    const go=()=>{p.currentTime=t;p.play().catch(()=>{});};
    if(p.readyState>=1)go();else{p.preload='metadata';p.addEventListener('loadedmetadata',go,{once:true});p.load();}
  }
  document.addEventListener('click',ev=>{
    const target=ev.target.closest('.jump,.span'); if(!target)return;
    const v=target.closest('.video'); const i=target.dataset.event??target.closest('.event').dataset.event; jump(v,i);
  });
  cls.addEventListener('change',apply); thr.addEventListener('input',apply); apply();
})();
"""


def render(items: list[dict[str, Any]], failed: list[dict[str, Any]], title: str) -> str:
    esc = html.escape
    classes = sorted({e["class"] for it in items for e in it["events"]})
    colours = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}
    options = "".join(f'<option value="{esc(c)}">{esc(c)}</option>' for c in classes)
    cards = "".join(_card(rank, it, colours) for rank, it in enumerate(items, 1))
    failures = (
        "<section class='failed'><h2>Failed inputs</h2><ul>"
        + "".join(f"<li>{esc(str(e.get('input')))}: {esc(str(e.get('error')))}</li>" for e in failed)
        + "</ul></section>"
        if failed
        else ""
    )
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    events = sum(len(it["events"]) for it in items)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><div><label>class <select id='class-filter'><option value='*'>all</option>"
        f"{options}<option value=''>no event</option></select></label>"
        f"<label>min score <input id='threshold' type='range' min='0' max='1' step='0.01' value='0'> "
        f"<span id='threshold-value'>0.00</span></label>"
        f"<span><span id='shown-count'>{len(items)}</span> of {len(items)} videos shown · {events} event(s)"
        f"{f' · {len(failed)} failed' if failed else ''} · cplvad {__version__}, {created}</span></div></header>"
        f"<main id='videos'>{cards}{failures}</main><script>{SCRIPT}</script></body></html>"
    )


def write_review_page(sink: Location, title: str | None = None) -> str:
    """Write ``index.html`` at the root of ``sink`` (atomically / one PUT); returns where it went."""
    items, failed = collect(sink)
    name = title or f"cplvad review: {sink.uri('').rstrip('/')}"
    sink.write_bytes(PAGE_FILE, utf8(render(items, failed, name)))
    return sink.uri(PAGE_FILE)
