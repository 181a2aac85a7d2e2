"""A validation split: training videos held out so that choices (CAR rule, focal weight, epochs) are made
on them and never on the test set.

Videos, not samples, are held out: every crop of a held-out video leaves the training set with it. The
split is stratified by class (normal and abnormal videos separately, and within each the classes in
proportion), at least one normal and one abnormal video on each side, and deterministic from the seed,
so stage 1 and stage 2 of one run hold out the same videos.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from cplvad.data.training_set import TrainingSet
from cplvad.errors import DataError
from cplvad.eval.scoring import score_chunks
from cplvad.modeling.dual_branch import CPLVAD
from cplvad.modeling.losses import topk_count, topk_mean

VALIDATION_KEY = "validation"
"""``meta.json`` ``extra`` key: ``{"video_auc": percent, "video_ap": percent, "videos": int, "fraction": float,
"split": str}`` (``split``: which videos were held out, see :func:`split_id`)."""
HISTORY_KEY = "val_video_auc"
"""Per-epoch validation video AUC (percent) in history.json."""
HISTORY_AP_KEY = "val_video_ap"
"""Per-epoch validation video AP (percent) in history.json: XD-Violence's headline metric is AP."""


@dataclass
class Split:
    """Sample indices of the two parts and the number of held-out videos."""

    train: torch.Tensor
    validation: torch.Tensor
    videos: int


def _held_out_in_group(
    videos: list[str], patterns: dict[str, tuple[int, ...]], count: int, rng: np.random.Generator
) -> list[str]:
    """``count`` videos of one group (normal or abnormal), spread over its classes in proportion.

    Each class is shuffled; its i-th video gets the rank (i + 0.5) / class size, and the lowest ranks are
    taken (ties between classes in a random class order), i.e. systematic stratified sampling.
    """
    by_class: dict[tuple[int, ...], list[str]] = {}
    for v in videos:
        by_class.setdefault(patterns[v], []).append(v)
    classes = sorted(by_class)
    tie_break = rng.permutation(len(classes))  # a random order of the classes for equal ranks
    ranked = []
    for c, cls in enumerate(classes):
        members = [by_class[cls][j] for j in rng.permutation(len(by_class[cls]))]
        ranked += [((i + 0.5) / len(members), int(tie_break[c]), v) for i, v in enumerate(members)]
    return [v for *_, v in sorted(ranked)[:count]]


def hold_out(data: TrainingSet, fraction: float, seed: int) -> Split:
    """Hold out ``round(fraction x videos)`` of each of the normal and abnormal groups (at least one)."""
    patterns: dict[str, tuple[int, ...]] = {}
    abnormal: dict[str, bool] = {}
    owners = data.sample_videos
    for video, labels, ab in zip(owners, data.labels.numpy(), data.abnormal.tolist(), strict=True):
        patterns.setdefault(video, tuple(np.flatnonzero(labels).tolist()))
        abnormal.setdefault(video, bool(ab))
    rng = np.random.default_rng(seed)
    held: set[str] = set()
    for group_is_abnormal in (False, True):
        group = [v for v in patterns if abnormal[v] == group_is_abnormal]
        count = max(1, int(np.floor(len(group) * fraction + 0.5)))
        if count >= len(group):
            kind = "abnormal" if group_is_abnormal else "normal"
            raise DataError(
                f"train.validation_fraction = {fraction} would hold out {count} of the {len(group)} {kind} "
                "training videos and leave none to train on; lower it, or use more training videos"
            )
        held.update(_held_out_in_group(group, patterns, count, rng))
    is_held = torch.tensor([v in held for v in owners])
    return Split(
        train=torch.nonzero(~is_held).flatten(), validation=torch.nonzero(is_held).flatten(), videos=len(held)
    )


def split_id(data: TrainingSet) -> str:
    """The identity of a set of held-out videos (16 hex digits of a sha256 over their sorted names): two
    validation numbers are comparable only when they come from the same videos."""
    names = sorted(set(data.sample_videos))
    return hashlib.sha256("\n".join(names).encode("utf-8", "surrogateescape")).hexdigest()[:16]


@torch.no_grad()
def video_metrics(
    model: CPLVAD, data: TrainingSet, device: torch.device, batch_size: int = 64
) -> dict[str, float]:
    """Video-level AUC and AP (percent) of the binary branch, ``{HISTORY_KEY: auc, HISTORY_AP_KEY: ap}``:
    a sample's score is the mean of its top-k snippet anomaly probabilities (k = floor(valid / 16) + 1, the
    stage-1 MIL score), a video's the mean over its crops."""
    was_training = model.training
    model.eval()
    scores = []
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)))
        x, lengths = data.features[idx].to(device), data.lengths[idx].to(device)
        binary, _ = score_chunks(model, x, lengths)
        mask = data.masks(idx).to(device)[:, None, :]
        scores.append(topk_mean(binary[:, None, :], mask, topk_count(mask))[:, 0].float().cpu())
    model.train(was_training)
    per_sample = torch.cat(scores).numpy()
    owners = data.sample_videos
    names = list(dict.fromkeys(owners))
    index = {v: i for i, v in enumerate(names)}
    owner = np.array([index[v] for v in owners])
    video_score = np.bincount(owner, weights=per_sample) / np.bincount(owner)
    video_label = np.zeros(len(names), dtype=bool)
    video_label[owner] = data.abnormal.numpy()
    return {
        HISTORY_KEY: round(100.0 * float(roc_auc_score(video_label, video_score)), 4),
        HISTORY_AP_KEY: round(100.0 * float(average_precision_score(video_label, video_score)), 4),
    }
