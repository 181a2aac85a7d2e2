"""A straightforward CAR: Python loops per video, snippet, threshold and segment, for the rules ``simple``
and ``paper`` (the ``release`` rule's reference is the port of the authors' code in
``tests/release_port.py``).

It is the yardstick of ``bench_car.py`` and the independent reference that tests compare the vectorised
``cplvad.pseudo.rules.refine`` with (same definitions, written the obvious way: segments as lists).
"""

from __future__ import annotations

import math

import numpy as np

from cplvad.config import CarConfig, ReleaseCarConfig


def _upsample(level: np.ndarray, scale: int, valid: int, n: int) -> np.ndarray:
    """Value j sits at snippet scale*j; linear in between, the last value held."""
    return np.interp(np.arange(n), scale * np.arange(valid), level[:valid])


def _aggregate(values: list[float], sigma_min: float) -> float:
    med = float(np.median(values))
    mad = float(np.median([abs(v - med) for v in values]))
    sigma = max(1.4826 * mad, sigma_min)
    weights = []
    for i, xi in enumerate(values):
        weights.append(
            sum(math.exp(-((xi - xj) ** 2) / (2 * sigma**2)) for j, xj in enumerate(values) if j != i)
        )
    total = sum(weights)
    if total == 0:
        weights, total = [1.0] * len(values), float(len(values))
    return sum(w * v for w, v in zip(weights, values, strict=True)) / total


def _runs(b: list[bool]) -> list[list[int]]:
    runs, start = [], None
    for t, on in enumerate(b + [False]):
        if on and start is None:
            start = t
        elif not on and start is not None:
            runs.append([start, t - 1])
            start = None
    return runs


def _merge(runs: list[list[int]], max_gap: int, min_length: int) -> list[list[int]]:
    """Merge runs across at most ``max_gap`` snippets, then drop segments shorter than ``min_length``."""
    segments: list[list[int]] = []
    for seg in runs:
        if segments and seg[0] - segments[-1][1] - 1 <= max_gap:
            segments[-1][1] = seg[1]
        else:
            segments.append(list(seg))
    return [seg for seg in segments if seg[1] - seg[0] + 1 >= min_length]


def _paper_segments(s: list[float], cfg: ReleaseCarConfig) -> list[list[int]]:
    """The paper rule (the authors' grouping and filter on one aggregated score): per threshold, merged and filtered segments add their
    mean score (over their snippets that passed) to every snippet they cover; cut at vote_sum / levels."""
    votes = [0.0] * len(s)
    for th in cfg.thresholds:
        passed = [val >= th for val in s]
        for start, end in _merge(_runs(passed), cfg.max_gap, cfg.min_length):
            members = [s[t] for t in range(start, end + 1) if passed[t]]
            for t in range(start, end + 1):
                votes[t] += sum(members) / len(members)
    return _runs([v >= cfg.vote_sum / len(cfg.levels) for v in votes])


def _flat_continuous(start: int, end: int, ratio: float) -> list[float]:
    half = (end - start + 1) / 2
    centre = (start + end) / 2
    flat = ratio * half
    sigma = (half - flat) / 3
    out = []
    for t in range(start, end + 1):
        d = max(abs(t - centre) - flat, 0.0)
        out.append(1.0 if d == 0 else math.exp(-(d**2) / (2 * max(sigma, 1e-6) ** 2)))
    return out


def _flat_integer(length: int, ratio: float) -> list[float]:
    flat = int(length * ratio)
    tail = (length - flat) // 2
    out = [1.0] * length
    for d in range(tail):
        value = math.exp(-0.5 * ((d - (tail - 1)) / (tail / 3)) ** 2)
        out[d] = out[length - 1 - d] = value
    return out


def refine_loop(
    level_scores: np.ndarray, lengths: np.ndarray, abnormal: np.ndarray, n: int, cfg: CarConfig
) -> np.ndarray:
    """``level_scores``: (N, L, n), level i in its first n / 2^i positions; ``lengths``: valid snippets."""
    out = np.zeros((len(lengths), n), dtype=np.float32)
    paper = cfg.enabled and cfg.rule == "paper"
    levels = cfg.release.levels if paper else range(level_scores.shape[1])
    for v, valid in enumerate(int(x) for x in lengths):
        if not abnormal[v]:
            continue
        x = np.stack([_upsample(level_scores[v, i], 2**i, -(-valid // 2**i), n) for i in levels])
        if cfg.enabled:
            s = [_aggregate(list(x[:, t]), cfg.sigma_min) for t in range(valid)]
        else:
            s = [float(np.mean(x[:, t])) for t in range(valid)]
        if paper:
            segments = _paper_segments(s, cfg.release)
        else:
            votes = [0] * valid
            for th in cfg.thresholds:
                for start, end in _runs([val >= th for val in s]):
                    for t in range(start, end + 1):
                        votes[t] += 1
            b = [2 * c >= len(cfg.thresholds) for c in votes]
            if not cfg.enabled:
                out[v, :valid] = b
                continue
            segments = _merge(_runs(b), cfg.max_gap, cfg.min_length)
        if not segments and cfg.keep_topk:
            k = valid // 16 + 1
            top = sorted(range(valid), key=lambda t: -s[t])[:k]
            segments = _runs([t in top for t in range(valid)])
        for start, end in segments:
            if not paper:
                out[v, start : end + 1] = _flat_continuous(start, end, cfg.flat_ratio)
                continue
            ratio = cfg.release.flat_ratio_end if end == valid - 1 else cfg.release.flat_ratio
            if cfg.release.discretisation == "integer":
                out[v, start : end + 1] = _flat_integer(end - start + 1, ratio)
            else:
                out[v, start : end + 1] = _flat_continuous(start, end, ratio)
    return out
