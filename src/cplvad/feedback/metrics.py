"""How a model does on the operators' verdicts: what the evaluation reports and what promotion checks.

The whole video of every event verdict is scored with the model's calibrated threshold and
``predict.min_event_snippets``, as ``cplvad predict`` scores it (a clip alone, without the video around it,
scores differently: the model sees context), and its events are compared with the judged clips (an event
marked false alarm or confirmed, with its context):

- ``feedback.false_alarm_clips``, ``feedback.false_alarms`` (events the model still raises that overlap
  them) and ``feedback.false_alarms_per_hour`` (over the clips' duration; null when no clip has a frame
  rate);
- ``feedback.confirmed_events`` and ``feedback.event_recall`` (percent whose event the model still flags: an
  event overlapping the confirmed one), ``feedback.class_recall`` (percent flagged with the confirmed class).

A model trained on the feedback has seen these clips: the figures say whether it learned the verdicts, not
how it does on new footage. ``feedback_regression`` compares two models' figures; ``promotion_check`` scores
the registry's candidate and champion on the same feedback and refuses a candidate that is worse.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.table import Table

from cplvad.config import Config
from cplvad.data.features import load_features
from cplvad.device import resolve_device
from cplvad.errors import DataError
from cplvad.eval.events import Event, find_events
from cplvad.eval.scoring import score_videos
from cplvad.feedback.folder import CLIP_KINDS, read_record
from cplvad.modeling.dual_branch import CPLVAD
from cplvad.modeling.factory import CALIBRATION_KEY, ModelMeta, load_model

if TYPE_CHECKING:
    from cplvad.tracking.registry import PromotionContext

PREFIX = "feedback."
LOWER_IS_BETTER = ("feedback.false_alarms", "feedback.false_alarms_per_hour")
HIGHER_IS_BETTER = ("feedback.event_recall", "feedback.class_recall")


def feedback_metrics(
    model: CPLVAD,
    meta: ModelMeta,
    folder: str | Path,
    min_event_snippets: int,
    device: torch.device,
    frames_per_snippet: int = 16,
) -> dict[str, float | None]:
    """The ``feedback.*`` figures of a model on the event verdicts of ``folder`` (empty without any)."""
    record = read_record(folder)
    clips = [s for s in (record.samples if record else []) if s["kind"] in CLIP_KINDS]
    if not clips:
        return {}
    calibration = meta.extra.get(CALIBRATION_KEY) or {}
    if "threshold" not in calibration:
        raise DataError("the model has no calibrated threshold (meta.json); retrain it with `cplvad train`")
    threshold = float(calibration["threshold"])
    videos = sorted({s["video_features"] for s in clips})
    features = (
        (i, load_features(Path(folder) / rel, expected_dim=meta.feature_dim)) for i, rel in enumerate(videos)
    )
    events: dict[str, list[Event]] = {}
    for i, binary, classes in score_videos(model, features, device):
        fps = next(s["fps"] for s in clips if s["video_features"] == videos[i])
        events[videos[i]] = find_events(
            binary, classes, threshold, min_event_snippets, meta.classes, frames_per_snippet, fps
        )
    false_alarms, hours, flagged, right_class = 0, 0.0, 0, 0
    for sample in clips:
        start, end = sample["span"]
        if sample["kind"] == "false_alarm":
            false_alarms += sum(
                e.start_snippet < end and e.end_snippet > start for e in events[sample["video_features"]]
            )
            hours += (sample["seconds"] or 0.0) / 3600.0
            continue
        a, b = (start + k for k in sample["event_span"])
        overlapping = [
            e for e in events[sample["video_features"]] if e.start_snippet < b and e.end_snippet > a
        ]
        flagged += bool(overlapping)
        right_class += any(e.label == sample["label"] for e in overlapping)
    fa_clips = sum(s["kind"] == "false_alarm" for s in clips)
    confirmed = len(clips) - fa_clips
    return {
        "feedback.false_alarm_clips": float(fa_clips),
        "feedback.false_alarms": float(false_alarms) if fa_clips else None,
        "feedback.false_alarms_per_hour": false_alarms / hours if hours > 0 else None,
        "feedback.confirmed_events": float(confirmed),
        "feedback.event_recall": 100.0 * flagged / confirmed if confirmed else None,
        "feedback.class_recall": 100.0 * right_class / confirmed if confirmed else None,
    }


def print_feedback(metrics: Mapping[str, float | None], console: Console, title: str) -> None:
    table = Table(title=title)
    table.add_column("on the operators' verdicts")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key.removeprefix(PREFIX), "n/a" if value is None else f"{value:.2f}")
    console.print(table)


def feedback_regression(candidate: Mapping[str, Any], champion: Mapping[str, Any]) -> str | None:
    """Why the candidate is worse than the champion on the feedback (figures of both on the same folder),
    or None: more false alarms (or per hour), or a lower event or class recall."""
    worse = []
    for key in (*LOWER_IS_BETTER, *HIGHER_IS_BETTER):
        ours, theirs = candidate.get(key), champion.get(key)
        if ours is None or theirs is None:
            continue
        if (float(ours) > float(theirs)) if key in LOWER_IS_BETTER else (float(ours) < float(theirs)):
            worse.append(f"{key.removeprefix(PREFIX)} {float(ours):.2f} vs {float(theirs):.2f}")
    return "; ".join(worse) or None


def feedback_check(ctx: PromotionContext) -> str | None:
    """A promotion check (``tracking.registry.CHECKS``): score the candidate and the champion on
    ``data.feedback``; the reason to keep the champion when the candidate is worse on the verdicts, else
    None (also when there is no champion yet or no feedback is configured)."""
    if ctx.champion is None:
        return None
    return promotion_check(ctx.config, ctx.name, str(ctx.candidate.version), str(ctx.champion.version))


def promotion_check(config: Config, registered_model: str, candidate: str, champion: str) -> str | None:
    """Score the candidate and champion versions on ``data.feedback``; the reason to keep the champion when
    the candidate is worse on the verdicts, else None (also when no feedback is configured)."""
    from cplvad.tracking.registry import resolve_model

    folder = config.data.feedback
    if folder is None or not Path(folder).is_dir() or read_record(folder) is None:
        return None
    device = resolve_device(config.train.device, "train.device")
    figures = []
    for version in (candidate, champion):
        model, model_config, meta = load_model(
            resolve_model(f"models:/{registered_model}/{version}", config), device
        )
        figures.append(
            feedback_metrics(
                model,
                meta,
                folder,
                config.predict.min_event_snippets,
                device,
                model_config.extract.frames_per_snippet,
            )
        )
    reason = feedback_regression(*figures)
    if reason is None:
        return None
    revision = read_record(folder).revision  # type: ignore[union-attr]
    return (
        f"version {candidate} is worse than champion version {champion} on the operators' verdicts in "
        f"{folder} (revision {revision}): {reason}; champion kept"
    )
