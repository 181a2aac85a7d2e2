"""``OUT/index.json``: one entry per input of an output folder or prefix (schema ``cplvad-prediction-index/1``),
so a night of footage is one file to read: ``count``, ``scored``, ``failed``, ``events`` and ``videos``
sorted by name, each ``{name, input, input_kind,
status (ok / failed), report, plot (paths relative to OUT), model_version, threshold, fps, duration_s,
snippets, peak_score, events, event_classes ({class: count}), top_class (class of the highest-scoring
event), error}``.

Runs and shards add to it: a new entry replaces the one of the same name, the others are kept.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from cplvad import __version__
from cplvad.io import utf8
from cplvad.storage.location import Location

INDEX_FILE = "index.json"
INDEX_SCHEMA = "cplvad-prediction-index/1"


def entry_from_report(name: str, doc: dict[str, Any], report: str, plot: str | None) -> dict[str, Any]:
    events = doc.get("events") or []
    scores = doc.get("snippet_scores") or []
    top = max(events, key=lambda e: e["score"], default=None)
    return {
        "name": name,
        "input": doc.get("input"),
        "input_kind": doc.get("input_kind"),
        "status": "ok",
        "report": report,
        "plot": plot,
        "model_version": (doc.get("model") or {}).get("version"),
        "threshold": doc.get("threshold"),
        "fps": doc.get("fps"),
        "duration_s": doc.get("duration_s"),
        "snippets": doc.get("snippets"),
        "peak_score": max(scores, default=None),
        "events": len(events),
        "event_classes": dict(sorted(Counter(e["class"] for e in events).items())),
        "top_class": top["class"] if top else None,
        "error": None,
    }


def failed_entry(name: str, display: str, kind: str, error: str) -> dict[str, Any]:
    return {
        "name": name,
        "input": display,
        "input_kind": kind,
        "status": "failed",
        "report": None,
        "plot": None,
        "error": error,
    }


def read_index(sink: Location) -> dict[str, Any] | None:
    raw = sink.read_bytes(INDEX_FILE)
    try:
        doc = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == INDEX_SCHEMA else None


def update_index(sink: Location, entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Merge ``entries`` into ``OUT/index.json`` (written whole: atomic rename or one PUT); return it."""
    old = read_index(sink)
    by_name = {e["name"]: e for e in (old or {}).get("videos", [])}
    by_name.update({e["name"]: e for e in entries})
    videos = [by_name[k] for k in sorted(by_name)]
    index = {
        "schema": INDEX_SCHEMA,
        "cplvad_version": __version__,
        "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "count": len(videos),
        "scored": sum(e["status"] == "ok" for e in videos),
        "failed": sum(e["status"] == "failed" for e in videos),
        "events": sum(e.get("events") or 0 for e in videos),
        "videos": videos,
    }
    sink.write_bytes(INDEX_FILE, utf8(json.dumps(index, indent=1, allow_nan=False) + "\n"))
    return index
