"""Temporal annotations of test videos: UCF, XD and XD-multiclass text files, or our JSON form.

All three text formats share one grammar: ``name [LABEL] s e [LABEL] s e ...`` where a LABEL token
applies to the frame pairs that follow it. ``ucf`` has exactly one label (the class) before all pairs,
``xd`` has none, ``xd-multiclass`` has one before every pair. ``-1`` pairs mean "no segment".

JSON: ``{"video name": [{"start": s, "end": e, "label": "Fighting"}, ...], ...}`` (``label`` optional;
``[s, e]`` or ``[s, e, label]`` lists work too).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cplvad.errors import DataError
from cplvad.io import NAME_ERRORS

AnnotationFormat = Literal["auto", "ucf", "xd", "xd-multiclass", "json"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv")
_INT = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Segment:
    """Annotated frames [start, end) with the label written in the file (None where it has none)."""

    start: int
    end: int
    label: str | None = None


def strip_video_extension(name: str) -> str:
    """``"v=abc__#1_label_G-0-0.mp4"`` -> ``"v=abc__#1_label_G-0-0"``; dots inside names are kept."""
    lower = name.lower()
    for ext in VIDEO_EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def _parse_text_line(tokens: list[str], fmt: AnnotationFormat, where: str) -> list[Segment]:
    segments: list[Segment] = []
    label: str | None = None
    labels_seen = 0
    pending: list[int] = []
    for tok in tokens:
        if _INT.fullmatch(tok):
            pending.append(int(tok))
            if len(pending) == 2:
                if fmt == "xd-multiclass" and label is None:
                    raise DataError(f"{where}: xd-multiclass lines need a class code before every frame pair")
                start, end = pending
                pending = []
                if start != -1 and end != -1:
                    segments.append(Segment(start, end, label))
                if fmt == "xd-multiclass":
                    label = None
        else:
            if pending:
                raise DataError(f"{where}: label {tok!r} splits a frame pair; expected 'start end' numbers")
            label = tok
            labels_seen += 1
    if pending:
        raise DataError(f"{where}: odd number of frame indices; every segment needs a start and an end")
    if fmt == "ucf" and labels_seen != 1:
        raise DataError(f"{where}: UCF lines are 'name Class s1 e1 s2 e2'; found {labels_seen} class tokens")
    if fmt == "xd" and labels_seen:
        raise DataError(f"{where}: XD lines are 'name s1 e1 s2 e2 ...' without class tokens")
    return segments


def _read_text(path: Path, fmt: AnnotationFormat) -> dict[str, list[Segment]]:
    result: dict[str, list[Segment]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors=NAME_ERRORS).splitlines(), start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        name = strip_video_extension(tokens[0])
        where = f"{path}:{lineno}"
        if not name:
            raise DataError(f"{where}: {tokens[0]!r} is only an extension; lines start with the video's name")
        if name in result:
            raise DataError(f"{where}: video {name!r} is annotated twice; keep one line per video")
        result[name] = _parse_text_line(tokens[1:], fmt, where)
    return result


def _read_json(path: Path) -> dict[str, list[Segment]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors=NAME_ERRORS))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object mapping video names to segment lists")
    result: dict[str, list[Segment]] = {}
    for raw_name, items in data.items():
        name = strip_video_extension(raw_name)
        if not name:
            raise DataError(f"{path}: {raw_name!r} is not a video name")
        if not isinstance(items, list | None):
            raise DataError(f"{path}: video {raw_name!r} maps to {items!r}; expected a list of segments")
        segments = [_json_segment(item, path, raw_name) for item in items or []]
        result[name] = [seg for seg in segments if seg.start != -1 and seg.end != -1]
    return result


def _json_segment(item: object, path: Path, video: str) -> Segment:
    try:
        if isinstance(item, dict):
            start, end, label = item["start"], item["end"], item.get("label")
        elif isinstance(item, list):
            start, end, label = item[0], item[1], item[2] if len(item) > 2 else None
        else:
            raise TypeError("not an object or a list")
        if isinstance(start, bool) or isinstance(end, bool) or not (label is None or isinstance(label, str)):
            raise TypeError("start and end must be frame numbers, label a class name")
        return Segment(int(start), int(end), label)
    except (KeyError, IndexError, TypeError, ValueError, OverflowError) as exc:
        raise DataError(
            f"{path}: video {video!r} has a malformed segment {item!r} ({exc}); "
            "use {'start': s, 'end': e, 'label': 'Class'}"
        ) from None


def read_annotations(path: str | Path, fmt: AnnotationFormat = "auto") -> dict[str, list[Segment]]:
    """Video name (extension removed) -> annotated segments, in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"annotation file {path} does not exist; fix 'annotations' in the dataset manifest")
    if fmt == "json" or (fmt == "auto" and path.suffix.lower() == ".json"):
        return _read_json(path)
    return _read_text(path, fmt)
