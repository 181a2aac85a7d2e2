"""The verdicts the review page exports (schema ``cplvad-verdicts/1``), checked against the predictions.

::

    {"schema": "cplvad-verdicts/1", "predictions": "/abs/OUT", "title": ..., "exported_at": ...,
     "videos": [{"key": "cam1-0300.json", "name": "cam1-0300", "input": ..., "model_version": ...,
                 "video": "reviewed" | "missed" | null, "missed_class": "Fighting" | null,
                 "events": [{"event": 0, "start_frame": 160, "end_frame": 208, "predicted_class": "Fighting",
                             "verdict": "confirmed" | "false_alarm", "class": "Fighting" | null}]}]}

``key`` is the prediction document under ``predictions`` (``OUT/<name>.json``). Every problem is refused with
the file and line it is on: a video that is not in the predictions, an event that its document does not
have (the video was scored again after the review), an unknown verdict or class, a missed anomaly without
a class, and contradictions: a video listed twice with different verdicts, one event judged twice
differently.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cplvad.errors import DataError
from cplvad.predict.report import read_report
from cplvad.predict.review_page import VERDICTS_SCHEMA
from cplvad.storage.location import Location, is_s3, open_location

EVENT_VERDICTS = ("confirmed", "false_alarm")
VIDEO_VERDICTS = ("reviewed", "missed")


@dataclass(frozen=True)
class EventVerdict:
    event: int
    verdict: str
    """``confirmed`` or ``false_alarm``."""
    label: str | None
    """The confirmed class (None for a false alarm)."""
    line: int


@dataclass(frozen=True)
class VideoVerdicts:
    key: str
    """The prediction document under the predictions folder."""
    doc: dict[str, Any]
    video: str | None
    """``reviewed`` (nothing missed), ``missed`` (an anomaly the model did not flag) or None."""
    missed_class: str | None
    events: tuple[EventVerdict, ...]
    line: int

    @property
    def name(self) -> str:
        return self.key[: -len(".json")]


@dataclass(frozen=True)
class Verdicts:
    path: Path
    predictions: str
    """The folder (or ``s3://`` prefix) of the prediction documents."""
    sink: Location
    videos: tuple[VideoVerdicts, ...]


class _LineDecoder(json.JSONDecoder):
    """A JSON decoder that remembers the line on which every object starts (``lines[id(obj)]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[int, int] = {}

        def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
            text, end = s_and_end
            obj, after = json.decoder.JSONObject(s_and_end, *args)
            self.lines[id(obj)] = text.count("\n", 0, end) + 1
            return obj, after

        self.parse_object = parse_object
        self.scan_once = json.scanner.py_make_scanner(self)


def read_verdicts(path: str | Path, predictions: str | None = None) -> Verdicts:
    """The verdicts of ``path``, each video checked against its prediction document under ``predictions``
    (default: the folder the page recorded). DataError with the file and line of the first problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"verdicts file {path} does not exist; export it from the review page") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc}); export it again from the review page") from None
    decoder = _LineDecoder()
    try:
        doc = decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("schema") != VERDICTS_SCHEMA:
        raise DataError(f"{path}:1: not a {VERDICTS_SCHEMA} document (the review page's 'export verdicts')")

    def where(obj: Any) -> str:
        return f"{path}:{line_of(obj)}"

    def line_of(obj: Any) -> int:
        return decoder.lines.get(id(obj), 1)

    root = predictions or doc.get("predictions")
    if not isinstance(root, str) or not root:
        raise DataError(f"{where(doc)}: no 'predictions' folder; pass --predictions OUT")
    if not is_s3(root) and not Path(root).is_dir():
        raise DataError(
            f"{where(doc)}: the predictions folder {root} does not exist; pass --predictions with the "
            "folder the page was made for (the --out of `cplvad predict`)"
        )
    sink = open_location(root)
    videos = doc.get("videos")
    if not isinstance(videos, list):
        raise DataError(f"{where(doc)}: 'videos' must be a list")
    seen: dict[str, tuple[dict[str, Any], VideoVerdicts]] = {}
    for entry in videos:
        if not isinstance(entry, dict):
            raise DataError(f"{where(doc)}: every item of 'videos' must be an object")
        video = _video(entry, sink, root, path, line_of)
        if video.key in seen:
            first, before = seen[video.key]
            if _comparable(first) != _comparable(entry):
                raise DataError(
                    f"{where(entry)}: video {video.name!r} is judged again, differently from line "
                    f"{before.line}; keep one of the two"
                )
            continue
        seen[video.key] = (entry, video)
    return Verdicts(path, root.rstrip("/"), sink, tuple(v for _, v in seen.values()))


def _comparable(entry: dict[str, Any]) -> Any:
    keys = ("video", "missed_class", "events")
    return json.dumps({k: entry.get(k) for k in keys}, sort_keys=True)


def _video(
    entry: dict[str, Any], sink: Location, root: str, path: Path, line_of: Callable[[Any], int]
) -> VideoVerdicts:
    at = f"{path}:{line_of(entry)}"
    key = entry.get("key")
    if not isinstance(key, str) or not key.endswith(".json") or "/" in key:
        raise DataError(f"{at}: 'key' must name a prediction document (<name>.json), got {key!r}")
    name = key[: -len(".json")]
    doc = read_report(sink.read_bytes(key))
    if doc is None:
        raise DataError(
            f"{at}: video {name!r} is not in the predictions {root} (no readable {key}); these verdicts "
            "were made on another folder: pass --predictions"
        )
    classes = [str(c) for c in doc.get("classes") or []]
    abnormal = classes[1:]

    def check_class(label: Any, what: str, line: str) -> str:
        if label not in abnormal:
            raise DataError(
                f"{line}: {what} {label!r} is not an anomaly class of the model; one of {abnormal}"
            )
        return str(label)

    verdict = entry.get("video")
    if verdict not in (None, *VIDEO_VERDICTS):
        raise DataError(f"{at}: video verdict {verdict!r} is not one of {list(VIDEO_VERDICTS)} or null")
    missed = check_class(entry.get("missed_class"), "missed class", at) if verdict == "missed" else None
    doc_events = doc.get("events") or []
    judged: dict[int, EventVerdict] = {}
    for e in entry.get("events") or []:
        line = f"{path}:{line_of(e)}"
        if not isinstance(e, dict) or not isinstance(e.get("event"), int):
            raise DataError(f"{line}: an event verdict needs its event number ('event')")
        k = e["event"]
        if not 0 <= k < len(doc_events) or (
            (doc_events[k]["start_frame"], doc_events[k]["end_frame"])
            != (e.get("start_frame"), e.get("end_frame"))
        ):
            raise DataError(
                f"{line}: event {k} of video {name!r} (frames {e.get('start_frame')}-{e.get('end_frame')}) is not "
                f"an event of {key}: the video was scored again after the review; review it again"
            )
        if e.get("verdict") not in EVENT_VERDICTS:
            raise DataError(
                f"{line}: event verdict {e.get('verdict')!r} is not one of {list(EVENT_VERDICTS)}"
            )
        label = check_class(e.get("class"), "confirmed class", line) if e["verdict"] == "confirmed" else None
        judged_now = EventVerdict(k, e["verdict"], label, line_of(e))
        if k in judged and (judged[k].verdict, judged[k].label) != (judged_now.verdict, judged_now.label):
            raise DataError(
                f"{line}: event {k} of video {name!r} is judged {judged_now.verdict} here but "
                f"{judged[k].verdict} on line {judged[k].line}; keep one"
            )
        judged[k] = judged_now
    return VideoVerdicts(key, doc, verdict, missed, tuple(judged[k] for k in sorted(judged)), line_of(entry))
