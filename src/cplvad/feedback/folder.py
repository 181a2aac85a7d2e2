"""The feedback dataset: a folder that ``cplvad feedback add`` appends to and ``data.feedback`` trains on.

Layout (the repository's is ``feedback/``; its ``features/`` is versioned by DVC, the rest by git):

- ``feedback.csv``: a VadCLIP list (``path,label``, paths relative to the folder), one crop per sample, so the
  samples load like any training list;
- ``features/samples/<label>/<sample>__0.npy``: the (T, D) CLIP features of each sample;
- ``features/videos/<video>.npy``: the whole judged video of every event verdict, which the feedback figures
  score as ``cplvad predict`` did (a clip alone, without the video around it, scores differently);
- ``feedback.json`` (schema ``cplvad-feedback/1``): ``classes`` and ``feature_dim`` of the model whose
  predictions were judged, ``revision`` (one more after every addition) and ``samples``, each with its
  ``name``, ``label``, ``kind`` (``false_alarm``: the clip of an event marked false alarm, normal;
  ``confirmed``: the clip of a confirmed event, its class; ``missed``: a whole video with an anomaly the
  model missed, its class; ``reviewed``: a whole video reviewed with nothing missed and no confirmed event,
  normal), ``span`` (its snippets [a, b) in the video), ``event_span`` (a clip's event inside the sample,
  [a, b) from the sample's start) and ``video_features`` (a clip's whole video under ``features/videos``),
  ``fps``, ``seconds``, and where it came from (``video``, ``report``, ``predictions``, ``input``,
  ``model_version``, ``verdicts``, ``line``, ``added_at``).

A folder without ``feedback.json`` holds no feedback yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cplvad.data.dataset import FeatureList, feature_list_csv, read_feature_list
from cplvad.data.labels import ClassList
from cplvad.errors import DataError

SCHEMA = "cplvad-feedback/1"
RECORD_FILE = "feedback.json"
LIST_FILE = "feedback.csv"
FEATURES_DIR = "features"
CLIP_KINDS = ("false_alarm", "confirmed")
"""Samples cut around a judged event: what the feedback metrics score."""


@dataclass
class FeedbackRecord:
    classes: list[str]
    feature_dim: int | None
    revision: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "classes": self.classes,
            "feature_dim": self.feature_dim,
            "revision": self.revision,
            "samples": self.samples,
        }


def feature_rel(sample: dict[str, Any]) -> str:
    return f"{FEATURES_DIR}/samples/{sample['label']}/{sample['name']}__0.npy"


def video_rel(video_id: str) -> str:
    return f"{FEATURES_DIR}/videos/{video_id}.npy"


def read_record(folder: str | Path) -> FeedbackRecord | None:
    """The folder's ``feedback.json``; None when the folder holds no feedback yet. DataError for a folder that
    does not exist or a record that cannot be read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            f"feedback folder {folder} does not exist; create it with `cplvad feedback add` (or set "
            "data.feedback to null)"
        )
    path = folder / RECORD_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not readable JSON ({exc}); restore it (git, DVC)") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise DataError(f"{path} is not a {SCHEMA} record; restore it (git, DVC)")
    return FeedbackRecord(doc["classes"], doc.get("feature_dim"), int(doc.get("revision", 0)), doc["samples"])


def feedback_list(folder: str | Path, classes: ClassList) -> FeatureList | None:
    """The samples of the folder as a training list over ``classes``; None when it holds none."""
    record = read_record(folder)
    if record is None or not record.samples:
        return None
    return read_feature_list(Path(folder) / LIST_FILE, classes, None, "feedback")


def list_csv(samples: list[dict[str, Any]]) -> str:
    """``feedback.csv``: one row per sample, in the record's order."""
    return feature_list_csv([(feature_rel(s), s["label"]) for s in samples])
