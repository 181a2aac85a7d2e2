"""An independent port of the authors' pseudo-label rule, written from reading their release
(github.com/eastbrother87/CPLVAD at 3d705a6, models/model.py: ``Generate_gt`` and
``CPLVAD_pseudo.forward``), one video at a time with lists and Python floats as their code does, and
nothing from cplvad. Tests compare ``car.rule: release`` with it snippet by snippet.

Also: synthetic multi-level score sequences in the model's level layout, with anomalies that reach the
last snippet of some videos, and the release's numbers per dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

UCF = {"grouping": 6, "filter": 4, "cumulative": 22.0, "flat1": 0.55, "flat2": 0.6}
"""configs/ucf.py: --grouping 6, --filter 4, --cumulative-thresh1 22, --flat-ratio1 0.55, --flat-ratio2 0.6."""
XD = {"grouping": 22, "filter": 5, "cumulative": 33.0, "flat1": 0.95, "flat2": 0.95}
"""configs/xd.py: --grouping 22, --filter 5, --cumulative-thresh1 33, both flat ratios 0.95."""
THRESHOLDS = [0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
VOTING_LEVELS = 5
"""``for j in range(5)``: levels 0-4 of the six."""


@dataclass
class PortResult:
    mask: list[int]
    """0/1 per valid snippet: the thresholded vote (their ``new``)."""
    labels: list[float]
    """The flat-Gaussian pseudo labels (their ``apply_adaptive_gaussian``)."""
    segment_ends: set[int]
    """Last snippet of every kept segment (at any level and threshold): where the slip can matter."""


def step_upsample(level: np.ndarray, scale: int, length: int) -> list[float]:
    """Their ``repeat_interleave(2**i)`` then ``[0:length]``: snippet t reads value t // scale."""
    return [float(level[t // scale]) for t in range(length)]


def _runs(log: list[float], th: float) -> list[tuple[int, int, float]]:
    """Consecutive indices at or above ``th`` (compared in float32, like their tensor), with the plain mean
    of their values: (first, last, mean)."""
    th32 = float(np.float32(th))
    out: list[tuple[int, int, float]] = []
    members: list[float] = []
    first = prev = -2
    for t, v in enumerate(log):
        if v >= th32:
            if t == prev + 1 and members:
                members.append(v)
            else:
                if members:
                    out.append((first, prev, sum(members) / len(members)))
                first, members = t, [v]
            prev = t
    if members:
        out.append((first, prev, sum(members) / len(members)))
    return out


def _group(runs: list[tuple[int, int, float]], gap: float) -> list[tuple[int, int, float]]:
    """Their ``grouping``: the next run joins while it starts at most ``gap`` after the current end; the
    score becomes (score * time1 + next * time2) / (time1 + time2) with time1 the FIRST run's end - start
    (never updated), or the plain average of the two when both times are 0."""
    merged = []
    i = 0
    while i < len(runs):
        start, end, score = runs[i]
        time1 = end - start
        while i + 1 < len(runs) and runs[i + 1][0] - end <= gap:
            nstart, nend, nscore = runs[i + 1]
            time2 = nend - nstart
            end = nend
            total = time1 + time2
            score = (score + nscore) / 2 if total == 0 else (score * time1 + nscore * time2) / total
            i += 1
        merged.append((start, end, score))
        i += 1
    return merged


def _flat_gaussian(length: int, ratio: float) -> list[float]:
    """Their ``flat_gaussian``: int(length * ratio) flat ones, tails of (length - flat) // 2 with sigma
    tail / 3, in float32."""
    result = torch.ones(length)
    flat = int(length * ratio)
    tail = (length - flat) // 2
    if tail > 0:
        x = torch.arange(tail, dtype=torch.float32)
        decay = torch.exp(-0.5 * ((x - (tail - 1)) / (tail / 3.0)) ** 2)
        result[:tail] = decay
        result[-tail:] = decay.flip(0)
    return result.tolist()


def generate_gt(level_scores: np.ndarray, length: int, numbers: dict, fix_slip: bool = False) -> PortResult:
    """One video: ``level_scores`` (L, n) in the model's layout (level i in its first n / 2^i positions),
    ``length`` valid snippets. ``fix_slip``: add each segment to [start, end] instead of [start, end)."""
    segments = []
    for j in range(VOTING_LEVELS):
        log = step_upsample(level_scores[j], 2**j, length)
        for th in THRESHOLDS:
            grouped = _group(_runs(log, th), numbers["grouping"])
            segments += [(s, e, c) for s, e, c in grouped if e - s > numbers["filter"]]
    votes = torch.zeros(length)  # float32, added in their order
    for start, end, con in segments:
        votes[start : end + 1 if fix_slip else end] += con
    mask = [1 if v >= numbers["cumulative"] else 0 for v in votes.tolist()]
    labels = [0.0] * length
    t = 0
    while t < length:
        if mask[t]:
            start = t
            while t < length and mask[t]:
                t += 1
            ratio = numbers["flat2"] if t == length else numbers["flat1"]  # a run reaching the end
            labels[start:t] = _flat_gaussian(t - start, ratio)
        else:
            t += 1
    return PortResult(mask, labels, {e for _, e, _ in segments})


def synthetic_sequences(videos: int, n: int = 192, levels: int = 6, seed: int = 0):
    """Multi-level scores (N, L, n) float32 in the model's layout, their masks (N, L, n) and valid lengths:
    a low noisy background with one to three anomalies (4-60 snippets, 0.55-1.0 high, about a third at 1),
    every coarser level the noisy mean of the finer one; every third video has an anomaly that runs to its
    last snippet."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(n // 4, n + 1, size=videos)
    scores = np.zeros((videos, levels, n), dtype=np.float32)
    masks = np.zeros((videos, levels, n), dtype=bool)
    for v, length in enumerate(lengths):
        base = np.clip(0.25 + np.cumsum(rng.normal(0, 0.04, n)) * 0.5, 0.0, 0.6)
        for a in range(int(rng.integers(1, 4))):
            width = int(rng.integers(4, 61))
            if v % 3 == 0 and a == 0:  # still going when the video ends (the pooled tail sees it too)
                start, width = length - width, n
            else:
                start = int(rng.integers(0, max(1, length - width)))
            base[max(start, 0) : start + width] = min(rng.uniform(0.55, 1.2), 1.0)  # some saturate
        level = np.clip(base + rng.normal(0, 0.06, n), 0, 1)
        for i in range(levels):
            t = n // 2**i
            if i:
                level = np.clip(level[: 2 * t].reshape(t, 2).mean(axis=1) + rng.normal(0, 0.04, t), 0, 1)
            valid = -(-length // 2**i)
            scores[v, i, :valid] = level[:valid]
            masks[v, i, :valid] = True
    return scores, masks, lengths
