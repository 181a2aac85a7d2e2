"""The prediction document written for every input: ``OUT/<input stem>.json``, schema ``cplvad-prediction/1``.

Fields:

- ``schema``, ``cplvad_version``; ``input`` (the path given), ``input_kind`` (``video`` or ``features``);
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
  start_snippet, end_snippet}`` (see ``cplvad.predict.events``).

Scores are rounded to 6 decimals. The file is indented JSON with every score array on one line (class
probabilities and events: one row per line), so it stays small and readable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cplvad import __version__
from cplvad.io import write_text
from cplvad.predict.events import Event
from cplvad.predict.predictor import Predictor, Threshold

SCHEMA = "cplvad-prediction/1"
DECIMALS = 6


def _rounded(a: np.ndarray) -> list[Any]:
    return np.round(a.astype(np.float64), DECIMALS).tolist()


def build_report(
    *,
    input_path: str,
    input_kind: str,
    predictor: Predictor,
    threshold: Threshold,
    min_event_snippets: int,
    fps: float | None,
    frames: int,
    frames_per_snippet: int,
    binary: np.ndarray,
    classes: np.ndarray,
    events: Sequence[Event],
) -> dict[str, Any]:
    t = len(binary)
    return {
        "schema": SCHEMA,
        "cplvad_version": __version__,
        "input": input_path,
        "input_kind": input_kind,
        "model": predictor.describe(),
        "classes": list(predictor.classes),
        "threshold": round(threshold.value, DECIMALS),
        "threshold_source": threshold.source,
        "false_alarm_rate": threshold.false_alarm_rate,
        "min_event_snippets": min_event_snippets,
        "fps": fps,
        "frames": frames,
        "frames_per_snippet": frames_per_snippet,
        "snippets": t,
        "scored_frames": t * frames_per_snippet,
        "duration_s": round(frames / fps, 3) if fps else None,
        "frame_scores": _rounded(np.repeat(binary, frames_per_snippet)),
        "snippet_scores": _rounded(binary),
        "snippet_class_probabilities": _rounded(classes),
        "events": [e.to_json() for e in events],
    }


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


def write_report(path: str | Path, report: dict[str, Any]) -> Path:
    write_text(path, report_json(report))
    return Path(path)
