"""The prediction document written for every input: ``OUT/<input stem>.json``, schema ``cplvad-prediction/1``.

Fields:

- ``schema``, ``cplvad_version``; ``input`` (the path or URI given, a URL without its credentials),
  ``input_kind`` (``video``, ``features`` or ``stream``), ``input_bytes`` (size of the input file, null for a
  stream);
- ``model``: ``source`` (directory or URI given), ``path`` (local directory), ``version``, ``registered_model``,
  ``weights_sha256``, ``stage``, ``dataset``, ``feature_dim``, ``clip_model``;
- ``classes`` (index 0 is the normal class), ``threshold``, ``threshold_source`` (``calibrated`` / ``user``),
  ``false_alarm_rate`` (the target of a calibrated threshold, else null), ``min_event_snippets``;
- ``fps`` (null for features unless ``--fps`` was given), ``frames`` (decoded frames of a video; T * 16 for
  features), ``frames_per_snippet``, ``snippets`` (T), ``scored_frames`` (T * 16: the last frames % 16
  frames of a video are not scored), ``duration_s`` (frames / fps, or null);
- ``frame_scores``: anomaly score per scored frame, i.e. each snippet's score repeated ``frames_per_snippet``
  times (length ``scored_frames``); ``snippet_scores`` (T); ``snippet_class_probabilities`` (T x M, rows
  sum to 1, columns in ``classes`` order);
- ``events``: ``{start_frame, end_frame (exclusive), start_s, end_s, class, score, class_probability,
  start_snippet, end_snippet}`` (see ``cplvad.eval.events``).

Live mode adds ``live``: ``part`` (a long session is written in parts of ``predict.live_part_snippets``
snippets), ``first_snippet`` / ``first_frame`` (where the part starts in the session: the part's arrays
start there, while event indices count from the start of the session), ``started_at`` / ``updated_at``
(UTC), ``reconnects`` and ``final`` (false while the part is still growing).

A re-run skips an input whose document has the same ``identity`` (input and its size, model source, version
and weights, threshold, ``min_event_snippets``, and ``fps`` for features).

Scores are rounded to 6 decimals. The file is indented JSON with every score array on one line (class
probabilities and events: one row per line), so it stays small and readable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from cplvad import __version__
from cplvad.eval.events import Event
from cplvad.predict.predictor import Predictor, Threshold

SCHEMA = "cplvad-prediction/1"
DECIMALS = 6


def _rounded(a: np.ndarray) -> list[Any]:
    return np.round(a.astype(np.float64), DECIMALS).tolist()


@dataclass(frozen=True)
class ScoringSettings:
    """What every document of one run shares: the model, its threshold and how events were found."""

    predictor: Predictor
    threshold: Threshold
    min_event_snippets: int
    frames_per_snippet: int


@dataclass(frozen=True)
class ScoredInput:
    """One input and its scores, as its document reports them."""

    input_path: str
    """The path or URI given (a URL without its credentials)."""
    input_kind: str
    input_bytes: int | None
    """Size of the input file; None for a stream."""
    fps: float | None
    frames: int
    binary: np.ndarray
    """Anomaly score per snippet (T,)."""
    classes: np.ndarray
    """Class probabilities per snippet (T, M)."""
    events: Sequence[Event]


def build_report(
    scored: ScoredInput, settings: ScoringSettings, live: dict[str, Any] | None = None
) -> dict[str, Any]:
    s, predictor, threshold = scored, settings.predictor, settings.threshold
    t, per_snippet = len(s.binary), settings.frames_per_snippet
    doc = {
        "schema": SCHEMA,
        "cplvad_version": __version__,
        "input": s.input_path,
        "input_kind": s.input_kind,
        "input_bytes": s.input_bytes,
        "model": predictor.describe(),
        "classes": list(predictor.classes),
        "threshold": round(threshold.value, DECIMALS),
        "threshold_source": threshold.source,
        "false_alarm_rate": threshold.false_alarm_rate,
        "min_event_snippets": settings.min_event_snippets,
        "fps": s.fps,
        "frames": s.frames,
        "frames_per_snippet": per_snippet,
        "snippets": t,
        "scored_frames": t * per_snippet,
        "duration_s": round(s.frames / s.fps, 3) if s.fps else None,
        "frame_scores": _rounded(np.repeat(s.binary, per_snippet)),
        "snippet_scores": _rounded(s.binary),
        "snippet_class_probabilities": _rounded(s.classes),
        "events": [e.to_json() for e in s.events],
    }
    if live is not None:
        doc["live"] = live
    return doc


def utc(t: float) -> str:
    """A ``time.time()`` as the documents and event lines write it: UTC, milliseconds, ``Z``."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


IDENTITY_FIELDS = (
    "schema",
    "input",
    "input_kind",
    "input_bytes",
    "threshold",
    "threshold_source",
    "min_event_snippets",
)
MODEL_IDENTITY = ("source", "version", "weights_sha256")


def identity(report: dict[str, Any]) -> dict[str, Any]:
    """What makes a document the result of the same input, model and settings (see the module docstring)."""
    model = report.get("model") or {}
    key = {k: report.get(k) for k in IDENTITY_FIELDS} | {f"model.{k}": model.get(k) for k in MODEL_IDENTITY}
    if report.get("input_kind") == "features":
        key["fps"] = report.get("fps")
    return key


def _dump(value: Any) -> str:
    return json.dumps(value, allow_nan=False)


def report_json(report: dict[str, Any]) -> str:
    """Indented JSON, score arrays on one line each, row lists one row per line."""
    fields = []
    for key, value in report.items():
        if isinstance(value, list) and value and isinstance(value[0], list | dict):
            text = "[\n" + ",\n".join(f"    {_dump(row)}" for row in value) + "\n  ]"
        elif isinstance(value, dict):
            text = json.dumps(value, indent=2, allow_nan=False).replace("\n", "\n  ")
        else:
            text = _dump(value)
        fields.append(f"  {_dump(key)}: {text}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


def read_report(raw: bytes | None) -> dict[str, Any] | None:
    """A prediction document, or None when ``raw`` is missing, not JSON or of another schema."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == SCHEMA else None
