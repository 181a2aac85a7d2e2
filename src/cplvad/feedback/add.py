"""``cplvad feedback add VERDICTS.json``: verdicts become video-level training samples in the feedback folder.

Per judged video (its prediction document under the page's predictions folder):

- an event marked **false alarm**: the event's snippets with ``predict.clip_context_s`` of context on each
  side (the clip the operator watched), labelled normal;
- a **confirmed** event: the same clip, labelled with the confirmed class;
- **missed anomaly**: the whole video, labelled with the class the operator gave;
- **reviewed, nothing missed** with no confirmed event: the whole video, labelled normal.

Features come from the scored run when its input was a feature file (``.npy``), else the video is encoded
again with the CLIP of the model that scored it (checked against the model, as ``cplvad predict`` does) and
must give the same number of snippets as when it was scored. A video judged again replaces its earlier
samples. Everything is written through ``cplvad.io`` (each file atomically; ``feedback.json`` last), then,
when the folder lies in a DVC repository, ``features/`` is versioned with ``dvc add``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cplvad.config import Config
from cplvad.data.features import load_features
from cplvad.device import resolve_device
from cplvad.errors import DataError, ForeignDataError
from cplvad.extract.pool import Failed
from cplvad.feedback.folder import (
    FEATURES_DIR,
    LIST_FILE,
    RECORD_FILE,
    FeedbackRecord,
    feature_rel,
    list_csv,
    read_record,
    video_rel,
)
from cplvad.feedback.verdicts import Verdicts, VideoVerdicts, read_verdicts
from cplvad.io import NAME_ERRORS, save_npy, write_json
from cplvad.predict.clips import local_video
from cplvad.storage.atomic import atomic_path
from cplvad.storage.location import local_copy
from cplvad.storage.locks import FolderLock
from cplvad.storage.ownership import LOCK_NAME, MARKER_DIR


@dataclass
class Added:
    folder: Path
    samples: list[dict[str, Any]]
    """The new samples."""
    replaced: int
    """Earlier samples of the same videos, replaced."""
    revision: int
    versioned: str | None
    """What ``dvc add`` wrote (the ``.dvc`` file), or None outside a DVC repository."""


def plan_samples(video: VideoVerdicts, verdicts: Verdicts, context_s: float) -> list[dict[str, Any]]:
    """The samples the verdicts on one video give (see the module docstring); features not read yet."""
    doc = video.doc
    where = f"{verdicts.path}:{video.line}"
    if doc.get("live"):
        raise DataError(
            f"{where}: video {video.name!r} was scored live: its pictures are not kept, so its verdicts "
            "cannot become training samples (record the stream and score the recording)"
        )
    total, fps, per_snippet = int(doc["snippets"]), doc.get("fps"), int(doc["frames_per_snippet"])
    context = math.ceil(context_s * fps / per_snippet) if fps else 0
    normal = str(doc["classes"][0])
    tag = hashlib.sha256(f"{verdicts.predictions}\n{video.key}".encode("utf-8", NAME_ERRORS)).hexdigest()[:6]
    video_id = f"fb-{video.name}-{tag}"
    added_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def sample(kind: str, label: str, span: tuple[int, int], line: int, **extra: Any) -> dict[str, Any]:
        return {  # a clip is named after its event, the whole video after the video alone
            "name": f"{video_id}.e{extra['event']}" if "event" in extra else video_id,
            "label": label,
            "kind": kind,
            "span": list(span),
            **extra,
            "fps": fps,
            "seconds": round((span[1] - span[0]) * per_snippet / fps, 3) if fps else None,
            "video": video.name,
            "report": video.key,
            "predictions": verdicts.predictions,
            "input": doc.get("input"),
            "model_version": (doc.get("model") or {}).get("version"),
            "verdicts": str(verdicts.path),
            "line": line,
            "added_at": added_at,
        }

    samples = []
    for verdict in video.events:
        event = doc["events"][verdict.event]
        a, b = int(event["start_snippet"]), int(event["end_snippet"])
        span = (max(0, a - context), min(total, b + context))
        label = normal if verdict.verdict == "false_alarm" else str(verdict.label)
        samples.append(
            sample(
                verdict.verdict,
                label,
                span,
                verdict.line,
                event=verdict.event,
                event_span=[a - span[0], b - span[0]],
                video_features=video_rel(video_id),
            )
        )
    if video.video == "missed":
        samples.append(sample("missed", str(video.missed_class), (0, total), video.line))
    elif video.video == "reviewed" and not any(v.verdict == "confirmed" for v in video.events):
        samples.append(sample("reviewed", normal, (0, total), video.line))
    return samples


def video_features(
    videos: list[VideoVerdicts], verdicts: Verdicts, config: Config, model: str | None = None
) -> dict[str, np.ndarray]:
    """The (T, D) features of every judged video (by document key): the scored feature file, or the video
    encoded again with the scoring model's CLIP (``model`` overrides the model recorded in the documents)."""
    root = verdicts.sink.local.resolve() if verdicts.sink.local is not None else None
    found: dict[str, np.ndarray] = {}
    by_model: dict[str, list[tuple[VideoVerdicts, str]]] = {}
    for video in videos:
        doc, where = video.doc, f"{verdicts.path}:{video.line}"
        source = local_video(doc, root, kinds=("video", "features"))
        if source is None:
            raise DataError(
                f"{where}: the input of {video.name!r} ({doc.get('input')}) is not found; run the command "
                "where the scored files are (paths are relative to the working directory or the predictions)"
            )
        if doc.get("input_kind") == "features":
            with local_copy(source) as file:  # a copy: the file may change after this
                found[video.key] = np.array(load_features(file, (doc.get("model") or {}).get("feature_dim")))
            continue
        recorded = doc.get("model") or {}
        path = recorded.get("path")
        chosen = model or (path if path and Path(path, "model.pt").is_file() else recorded.get("source"))
        by_model.setdefault(str(chosen), []).append((video, source))
    for chosen, items in by_model.items():
        found.update(_encode_again(chosen, items, verdicts, config))
    for video in videos:
        if len(found[video.key]) != int(video.doc["snippets"]):
            raise DataError(
                f"{verdicts.path}:{video.line}: {video.doc.get('input')} gives {len(found[video.key])} snippets "
                f"now but gave {video.doc['snippets']} when it was scored: it changed; score it and review it again"
            )
    return found


def _encode_again(
    model: str, items: list[tuple[VideoVerdicts, str]], verdicts: Verdicts, config: Config
) -> dict[str, np.ndarray]:
    from cplvad.predict.predictor import open_predictor
    from cplvad.predict.run import make_encoder

    predictor = open_predictor(model, config, resolve_device(config.extract.device, "extract.device"))
    encoder = make_encoder(predictor, config)
    found = {}
    for k, item in encoder.videos([source for _, source in items]):
        video = items[k][0]
        if isinstance(item, Failed):
            raise DataError(f"{verdicts.path}:{video.line}: {video.doc.get('input')}: {item.reason}")
        found[video.key] = item.features
    return found


def add_feedback(
    verdicts_path: str | Path,
    folder: str | Path,
    config: Config,
    *,
    predictions: str | None = None,
    model: str | None = None,
    version: bool = True,
    log: Callable[[str], None] = print,
) -> Added:
    """Turn the verdicts of ``verdicts_path`` into samples of the feedback folder ``folder`` (created if
    needed); ``version``: ``dvc add`` its features when it lies in a DVC repository."""
    verdicts = read_verdicts(verdicts_path, predictions)
    if not verdicts.videos:
        raise DataError(f"{verdicts.path}: no verdict in it; judge some events on the review page first")
    planned = {v.key: plan_samples(v, verdicts, config.predict.clip_context_s) for v in verdicts.videos}
    folder = Path(folder)
    (folder / MARKER_DIR).mkdir(parents=True, exist_ok=True)
    lock = FolderLock(folder / MARKER_DIR, LOCK_NAME, "feedback folder", str(folder))
    lock.acquire()
    try:
        return _add(verdicts, planned, folder, config, model=model, version=version, log=log)
    finally:
        lock.release()


def _add(
    verdicts: Verdicts,
    planned: dict[str, list[dict[str, Any]]],
    folder: Path,
    config: Config,
    *,
    model: str | None,
    version: bool,
    log: Callable[[str], None],
) -> Added:
    record = read_record(folder)
    if record is None:
        _refuse_foreign(folder)
        record = FeedbackRecord(classes=[], feature_dim=None)
    for video in verdicts.videos:
        classes = [str(c) for c in video.doc["classes"]]
        if (record.classes or classes) != classes:
            raise DataError(
                f"{verdicts.path}:{video.line}: {video.name!r} was scored by a model of classes {classes}, the "
                f"feedback in {folder} is for {record.classes}; use another feedback folder (--dataset)"
            )
        record.classes = classes
    features = video_features(list(verdicts.videos), verdicts, config, model)
    dims = {int(f.shape[1]) for f in features.values()} | (
        {record.feature_dim} if record.feature_dim else set()
    )
    if len(dims) > 1:
        raise DataError(
            f"{verdicts.path}: features of width {sorted(dims)} cannot share the feedback folder {folder}; "
            "use one folder per CLIP model (--dataset)"
        )
    judged = {(verdicts.predictions, key) for key in planned}
    stale = [s for s in record.samples if (s["predictions"], s["report"]) in judged]
    new = [s for key in planned for s in planned[key]]
    ours = {rel for s in record.samples for rel in _files(s)}
    taken = sorted(rel for s in new for rel in _files(s) if rel not in ours and (folder / rel).exists())
    if taken:
        raise ForeignDataError(
            f"{folder} holds {len(taken)} feature file(s) its {RECORD_FILE} does not name ({', '.join(taken[:3])}"
            f"{' ...' if len(taken) > 3 else ''}): cplvad never overwrites them; move them out of the folder"
        )
    for s in new:
        a, b = s["span"]
        save_npy(folder / feature_rel(s), np.ascontiguousarray(features[s["report"]][a:b]))
        if "video_features" in s:
            save_npy(folder / s["video_features"], np.ascontiguousarray(features[s["report"]]))
    record.samples = [s for s in record.samples if (s["predictions"], s["report"]) not in judged] + new
    record.feature_dim = dims.pop()
    record.revision += 1
    with atomic_path(folder / LIST_FILE) as tmp:
        tmp.write_bytes(list_csv(record.samples).encode("utf-8", NAME_ERRORS))
    write_json(folder / RECORD_FILE, record.to_json())
    kept = {rel for s in record.samples for rel in _files(s)}
    for rel in {rel for s in stale for rel in _files(s)} - kept:
        (folder / rel).unlink(missing_ok=True)
    return Added(folder, new, len(stale), record.revision, _dvc_add(folder, log) if version else None)


def _refuse_foreign(folder: Path) -> None:
    """A folder without a feedback record may receive one only if it holds no list or features of another
    origin (a fresh folder, or one with a README): cplvad would overwrite them."""
    found = [name for name in (LIST_FILE, FEATURES_DIR) if (folder / name).exists()]
    if found:
        raise ForeignDataError(
            f"{folder} holds {' and '.join(found)} but no {RECORD_FILE}: it is not a feedback folder of "
            "cplvad's, and cplvad never overwrites what it did not write; give another --dataset folder"
        )


def _files(sample: dict[str, Any]) -> list[str]:
    return [feature_rel(sample), *([sample["video_features"]] if "video_features" in sample else [])]


def _dvc_add(folder: Path, log: Callable[[str], None]) -> str | None:
    """``dvc add FOLDER/features`` when the folder lies in a DVC repository (the ``.dvc`` file it wrote)."""
    resolved = folder.resolve()
    root = next((p for p in (resolved, *resolved.parents) if (p / ".dvc").is_dir()), None)
    if root is None:
        log(f"{folder} is not in a DVC repository: its features are not versioned (`dvc add` them)")
        return None
    if importlib.util.find_spec("dvc") is None:
        log(f"DVC is not installed here: version {folder / FEATURES_DIR} with `dvc add` where it is")
        return None
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "add", "--quiet", str(resolved / FEATURES_DIR)],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise DataError(
            f"`dvc add {folder / FEATURES_DIR}` failed ({(done.stderr or done.stdout).strip()[:300]}); the "
            "samples are written, version them by hand"
        )
    return str(folder / f"{FEATURES_DIR}.dvc")
