"""Per-source daily histograms of the anomaly scores that a scoring job produced, for drift monitoring.

Every scoring job (``cplvad predict`` in batch or streaming mode, the Kubeflow scoring pipeline, ``--live``)
adds the snippet scores of each input to the histogram of its *source* and *day* and writes
``OUT/monitor/<source>/<day>/<writer>.json`` (schema ``cplvad-score-histogram/1``):

- ``source``: a live input's stream name; a file's folder (``night/cam1/0300.mp4`` -> ``cam1``: a camera's
  recordings usually share a folder);
- ``day``: the UTC date on which the snippets were scored (live: on which they arrived);
- ``writer``: one id per scoring process, so concurrent shards and sessions never write the same object;
- ``inputs``: per input (a live session: ``<name>.<session start>``) its counts in ``BINS`` equal bins of
  [0, 1], so a rescored input replaces its earlier counts instead of adding to them (``read_histograms``);
- ``model`` (source, path, version, weights checksum) and ``threshold``: which distribution to compare with.

The files are written at most every ``FLUSH_SECONDS`` and at the end of the job; the model's own reference is
the same histogram of the normal training videos' scores, stored at calibration (``meta.json``
``extra.calibration.histogram``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from cplvad.storage.location import Location

BINS = 20
"""Equal bins of [0, 1]: coarse enough that a day of one camera fills them, fine enough for the PSI."""
EDGES = np.linspace(0.0, 1.0, BINS + 1)
SCHEMA = "cplvad-score-histogram/1"
FOLDER = "monitor"
FLUSH_SECONDS = 30.0


def score_histogram(scores: Iterable[float] | np.ndarray) -> list[int]:
    """Counts of ``scores`` (clipped to [0, 1]) in the ``BINS`` equal bins."""
    counts, _ = np.histogram(np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0), bins=EDGES)
    return [int(c) for c in counts]


def source_of(uri: str, kind: str, name: str) -> str:
    """The source an input's scores count for: a stream's name, else the folder that holds the file."""
    if kind == "stream":
        return name
    parent = PurePosixPath(uri.replace("\\", "/")).parent.name
    return parent if parent not in ("", ".", "..") else "-"


def utc_day(when: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if when is None else when, timezone.utc).strftime("%Y-%m-%d")


@dataclass
class HistogramKeeper:
    """The histograms of one scoring process, written through ``sink`` (every ``FLUSH_SECONDS`` at most)."""

    sink: Location
    model: dict[str, Any]
    threshold: float
    writer: str = field(
        default_factory=lambda: f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    )
    _counts: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)
    _dirty: set[tuple[str, str]] = field(default_factory=set)
    _flushed: float = field(default_factory=time.monotonic)

    def add(self, source: str, input_key: str, scores: np.ndarray, when: float | None = None) -> None:
        """Count ``scores`` of ``input_key`` for ``source`` on the day of ``when`` (default: now)."""
        if not len(scores):
            return
        key = (source, utc_day(when))
        per_input = self._counts.setdefault(key, {})
        counts = np.asarray(score_histogram(scores), dtype=np.int64)
        per_input[input_key] = per_input.get(input_key, 0) + counts
        self._dirty.add(key)

    def maybe_flush(self) -> None:
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        for source, day in sorted(self._dirty):
            doc = {
                "schema": SCHEMA,
                "source": source,
                "day": day,
                "writer": self.writer,
                "updated_at": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "model": self.model,
                "threshold": self.threshold,
                "bins": BINS,
                "inputs": {k: v.tolist() for k, v in sorted(self._counts[(source, day)].items())},
            }
            rel = f"{FOLDER}/{source}/{day}/{self.writer}.json"
            self.sink.write_bytes(rel, (json.dumps(doc, allow_nan=False) + "\n").encode())
        self._dirty.clear()
        self._flushed = time.monotonic()


@dataclass(frozen=True)
class DayHistogram:
    """The merged counts of one source, day and model version."""

    source: str
    day: str
    model: dict[str, Any]
    threshold: float
    counts: np.ndarray
    inputs: int

    @property
    def snippets(self) -> int:
        return int(self.counts.sum())


def read_histograms(sink: Location) -> list[DayHistogram]:
    """Every source's daily histograms under ``OUT/monitor``, one per (source, day, model version): an input
    counted by several writers keeps its most recent counts. Files of another schema are ignored."""
    latest: dict[tuple[str, str, str], dict[str, tuple[str, list[int]]]] = {}
    described: dict[tuple[str, str, str], tuple[dict[str, Any], float]] = {}
    for rel in sorted(sink.sizes()):
        if not rel.startswith(f"{FOLDER}/") or not rel.endswith(".json"):
            continue
        try:
            doc = json.loads(sink.read_bytes(rel) or b"")
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("bins") != BINS:
            continue
        version = str((doc.get("model") or {}).get("version"))
        key = (doc["source"], doc["day"], version)
        described[key] = (doc.get("model") or {}, float(doc.get("threshold") or 0.0))
        inputs = latest.setdefault(key, {})
        for name, counts in doc["inputs"].items():
            if name not in inputs or inputs[name][0] <= doc["updated_at"]:
                inputs[name] = (doc["updated_at"], counts)
    return [
        DayHistogram(
            source,
            day,
            *described[(source, day, version)],
            counts=np.sum([np.asarray(c, dtype=np.int64) for _, c in inputs.values()], axis=0),
            inputs=len(inputs),
        )
        for (source, day, version), inputs in sorted(latest.items())
    ]
