"""CAR pieces pinned with hand-computed values, and the vectorised CAR against a per-video loop."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from cplvad.config import CarConfig, ReleaseCarConfig
from cplvad.errors import ConfigError
from cplvad.pseudo.car import (
    aggregate_scales,
    drop_short_runs,
    fill_gaps,
    flat_gaussian,
    flat_gaussian_integer,
    paper_votes,
    threshold_vote,
    topk_fallback,
)
from cplvad.pseudo.rules import paper_labels, refine

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "car_loop.py"


def levels(*values):
    """(1, L, 1) tensor: one snippet, one score per level."""
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1)


def test_rbf_weights_with_mad_bandwidth_hand_computed():
    # x = (0.1, 0.5, 0.6): median 0.5, |x - med| = (0.4, 0, 0.1), MAD 0.1 -> sigma = 0.14826, 2 sigma^2 = 0.043963
    # w ∝ (e^-0.16/2s² + e^-0.25/2s², e^-0.16/2s² + e^-0.01/2s², e^-0.25/2s² + e^-0.01/2s²)
    #   = (0.029656, 0.822813, 0.799938) -> s = Σ w x / Σ w = 0.541232
    assert aggregate_scales(levels(0.1, 0.5, 0.6), 0.05).item() == pytest.approx(0.541232, abs=1e-5)


def test_equal_levels_get_uniform_weights_and_an_outlier_gets_none():
    assert aggregate_scales(levels(0.3, 0.3, 0.3, 0.3, 0.3, 0.3), 0.05).item() == pytest.approx(0.3)
    # five levels agree at 0.8, one says 0.1: MAD 0 -> sigma_min 0.05 -> outlier weight ~ e^-98
    assert aggregate_scales(levels(0.8, 0.8, 0.8, 0.8, 0.8, 0.1), 0.05).item() == pytest.approx(0.8, abs=1e-6)
    # plain mean would be 0.6833; the bandwidth floor keeps a near-tie from being an "outlier"
    assert aggregate_scales(levels(0.5, 0.5, 0.5, 0.52), 0.05).item() == pytest.approx(0.505, abs=1e-3)
    # a single level: no pair, all weights vanish -> uniform
    assert aggregate_scales(levels(0.42), 0.05).item() == pytest.approx(0.42)


def test_median_of_an_even_count_is_the_mean_of_the_middle_two():
    # x = (0, 0, 1, 1): true median 0.5, MAD 0.5 -> sigma 0.7413; all pairs symmetric -> s = 0.5
    assert aggregate_scales(levels(0.0, 0.0, 1.0, 1.0), 0.05).item() == pytest.approx(0.5)


def test_threshold_vote():
    s = torch.tensor([[0.3, 0.45, 0.55, 0.7]])
    assert threshold_vote(s, [0.5]).tolist() == [[False, False, True, True]]
    # reaches at least half of (0.4, 0.5, 0.6)? 0.45 -> 1 of 3 (no), 0.55 -> 2 of 3 (yes)
    assert threshold_vote(s, [0.4, 0.5, 0.6]).tolist() == [[False, False, True, True]]


def test_merge_and_filter():
    b = torch.tensor([[0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0]], dtype=torch.bool)
    merged = fill_gaps(b, 2)
    # gaps of 2 (3-4) and 1 (12) are closed; the gap of 3 (8-10) and the trailing 0 stay
    assert merged.int().tolist() == [[0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0]]
    kept = drop_short_runs(merged, 3)
    # runs: 1-7 (7), 11-13 (3), 17-18 (2, dropped)
    assert kept.int().tolist() == [[0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]]


def test_flat_gaussian_shape():
    # run of 20: half 10, flat half 6 around centre 9.5 -> snippets 4..15 are 1 (12 = 0.6 x 20);
    # tails sigma = (10 - 6) / 3: snippet 3 is 0.5 past the flat part -> exp(-0.25 / (2 * 16/9)) = 0.9321;
    # snippet 0 is 3.5 past -> exp(-12.25 / (32/9)) = 0.0319
    out = flat_gaussian(torch.ones(1, 20, dtype=torch.bool), 0.6)[0]
    assert torch.all(out[4:16] == 1.0)
    assert out[3].item() == pytest.approx(0.93205, abs=1e-4) and out[16].item() == pytest.approx(
        0.93205, abs=1e-4
    )
    assert out[0].item() == pytest.approx(0.031894, abs=1e-5) and out[19].item() == pytest.approx(
        0.031894, abs=1e-5
    )
    b = torch.tensor([[0, 1, 1, 1, 0]], dtype=torch.bool)
    assert flat_gaussian(b, 1.0).tolist() == [[0.0, 1.0, 1.0, 1.0, 0.0]]


def test_topk_fallback_only_for_abnormal_videos_without_runs():
    scores = torch.tensor([[0.1, 0.4, 0.3, 0.2], [0.1, 0.4, 0.3, 0.2]])
    b = torch.zeros(2, 4, dtype=torch.bool)
    valid = torch.ones(2, 4, dtype=torch.bool)
    out = topk_fallback(b, scores, valid, torch.tensor([True, False]))
    assert out.tolist() == [[False, True, False, False], [False, False, False, False]]  # k = 4 // 16 + 1 = 1


def _stacked(videos, n, levels, lengths, rng):
    """Smooth random scores (N, L, n) in the model's level layout, and their masks."""
    base = np.clip(np.cumsum(rng.normal(0, 0.15, (videos, n)), axis=1) * 0.3 + 0.5, 0, 1)
    scores = np.zeros((videos, levels, n), dtype=np.float32)
    masks = np.zeros((videos, levels, n), dtype=bool)
    for i in range(levels):
        t = n // 2**i
        scores[:, i, :t] = np.clip(base[:, :: 2**i][:, :t] + rng.normal(0, 0.05, (videos, t)), 0, 1)
        masks[:, i, :t] = np.arange(t)[None, :] < -(-lengths // 2**i)[:, None]
    return scores, masks


def test_normal_videos_and_padding_get_zero():
    n = 32
    lengths = np.array([20, 32])
    masks = np.zeros((2, 3, n), dtype=bool)
    for i in range(3):
        masks[:, i, : n // 2**i] = np.arange(n // 2**i)[None, :] < -(-lengths // 2**i)[:, None]
    scores = torch.full((2, 3, n), 0.9)
    abnormal = torch.tensor([True, False])
    out = refine(scores, torch.from_numpy(masks), abnormal, n, CarConfig())
    assert out[1].sum() == 0 and out[0, 20:].sum() == 0 and out[0, :20].max() == 1.0
    off = refine(scores, torch.from_numpy(masks), abnormal, n, CarConfig(enabled=False))
    assert off[0, :20].tolist() == [1.0] * 20 and off[0, 20:].sum() == 0 and off[1].sum() == 0


def test_vectorised_car_equals_a_per_video_loop():
    spec = importlib.util.spec_from_file_location("car_loop", BENCH)
    car_loop = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(car_loop)
    rng = np.random.default_rng(0)
    n = 64
    lengths = rng.integers(5, n + 1, size=40)
    abnormal = rng.random(40) < 0.7
    scores, masks = _stacked(40, n, 4, lengths, rng)
    release = ReleaseCarConfig(
        levels=[0, 1, 2],
        thresholds=[0.4, 0.5, 0.55, 0.6, 0.7],
        max_gap=2,
        min_length=3,
        vote_sum=4.5,
        flat_ratio=0.5,
        flat_ratio_end=0.7,
    )
    configs = (
        CarConfig(),
        CarConfig(thresholds=[0.4, 0.5, 0.6], max_gap=1, min_length=2),
        CarConfig(enabled=False),
        CarConfig(rule="paper", release=release),
        CarConfig(
            rule="paper",
            keep_topk=False,
            release=release.model_copy(update={"discretisation": "continuous"}),
        ),
    )
    for cfg in configs:
        fast = refine(
            torch.from_numpy(scores), torch.from_numpy(masks), torch.tensor(abnormal), n, cfg
        ).numpy()
        slow = car_loop.refine_loop(scores, lengths, abnormal, n, cfg)
        np.testing.assert_allclose(fast, slow, atol=1e-5)


# --- the paper rule (car.rule: paper: the release's rule after Eq. 1), UCF-Crime numbers unless said otherwise

UCF = CarConfig(rule="paper", keep_topk=False)
XD = CarConfig(
    rule="paper",
    keep_topk=False,
    release=ReleaseCarConfig(max_gap=21, min_length=7, vote_sum=33, flat_ratio=0.95, flat_ratio_end=0.95),
)


def paper_rule_labels(snippet_scores, cfg=UCF):
    """Pseudo labels of one abnormal video from its aggregated scores (the paper rule after Eq. 1)."""
    s = torch.tensor([snippet_scores], dtype=torch.float32)
    return paper_labels(s, torch.ones_like(s, dtype=torch.bool), torch.tensor([True]), cfg)[0]


@pytest.mark.parametrize("cfg, below, at_cut", [(UCF, 0.79, 0.8), (XD, 0.89, 0.9)])
def test_constant_run_below_and_at_the_per_dataset_cut(cfg, below, at_cut):
    # a constant score s passes k thresholds of 0.55..0.95: their sum is k*s per level, our cut
    # vote_sum / 5 levels. UCF 22/5 = 4.4: 0.79 -> 5 x 0.79 = 3.95 (no), 0.8 -> 6 x 0.8 = 4.8 (yes);
    # XD 33/5 = 6.6: 0.89 -> 7 x 0.89 = 6.23 (no), 0.9 -> 8 x 0.9 = 7.2 (yes).
    # All six levels carry the constant (in their own layout), so the whole CAR sees it.
    def car(value):
        mask = torch.zeros(1, 6, 64, dtype=torch.bool)
        for i in range(6):
            mask[0, i, : 64 // 2**i] = True
        return refine(torch.full((1, 6, 64), value), mask, torch.tensor([True]), 64, cfg)[0]

    assert car(below).sum() == 0
    assert (car(at_cut) > 0).all()


def test_vote_sum_over_thresholds_hand_computed():
    # one segment at 0.9 over 8 thresholds (0.55..0.9) -> 8 x 0.9 = 7.2 on each of its snippets
    s = torch.tensor([[0.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.0]])
    votes = paper_votes(s, torch.ones_like(s, dtype=torch.bool), UCF.release)
    assert votes[0].tolist() == pytest.approx([0, 7.2, 7.2, 7.2, 7.2, 7.2, 7.2, 0], abs=1e-5)


@pytest.mark.parametrize("gap, merged", [(5, True), (6, False)])
def test_two_runs_merge_across_a_gap_at_the_limit_not_past_it(gap, merged):
    # runs of 4 at 0.9 (each shorter than 6) around `gap` snippets at 0: the authors' grouping 6 merges
    # when the next run starts <= 6 after the last one's final snippet, i.e. across at most 5 snippets
    scores = [0.0] * 3 + [0.9] * 4 + [0.0] * gap + [0.9] * 4 + [0.0] * 3
    s = torch.tensor([scores])
    votes = paper_votes(s, torch.ones_like(s, dtype=torch.bool), UCF.release)[0]
    span = slice(3, 3 + 8 + gap)
    if merged:  # one segment of 13 snippets, gap included; mean of its passing snippets 0.9 -> 8 x 0.9
        assert votes[span].tolist() == pytest.approx([7.2] * 13, abs=1e-5)
        assert paper_rule_labels(scores)[span].min() > 0  # the gap is labelled too
    else:
        assert votes.sum() == 0 and paper_rule_labels(scores).sum() == 0


@pytest.mark.parametrize("cfg, shortest", [(UCF, 6), (XD, 7)])
def test_a_run_one_snippet_too_short_is_dropped(cfg, shortest):
    for length, kept in ((shortest - 1, False), (shortest, True)):
        scores = [0.0] * 5 + [0.95] * length + [0.0] * 5
        assert bool(paper_rule_labels(scores, cfg).sum() > 0) is kept, length


def test_the_last_snippet_of_a_run_is_kept():
    # the authors' release adds each segment's score to [start, end) and so loses its last snippet
    scores = [0.0] * 10 + [0.9] * 8 + [0.0] * 12
    out = paper_rule_labels(scores)
    assert (out[10:18] > 0).all() and out[:10].sum() == 0 and out[18:].sum() == 0
    assert out[17].item() == out[10].item() > 0  # symmetric tails: the last snippet mirrors the first


@pytest.mark.parametrize(
    "length, ratio, expected",
    [
        (
            4,
            0.55,
            [1.0, 1.0, 1.0, 1.0],
        ),  # flat int(2.2) = 2, tails (4 - 2) // 2 = 1: the tail's only value is 1
        (7, 0.55, [0.324652, 1, 1, 1, 1, 1, 0.324652]),  # flat 3, tail 2, sigma 2/3: exp(-0.5 (1.5)^2)
        (7, 0.6, [1.0] * 7),  # flat int(4.2) = 4, tail 1
        # flat int(11.0) = 11, tail 4, sigma 4/3: exp(-0.5 (3 (d - 3) / 4)^2) = 0.079560, 0.324652, 0.754840, 1
        (20, 0.55, [0.079560, 0.324652, 0.754840] + [1.0] * 14 + [0.754840, 0.324652, 0.079560]),
        (20, 0.95, [1.0] * 20),  # flat 19, tail 0
        (
            60,
            0.95,
            [1.0] * 60,
        ),  # flat 57, tail 1 (a float32 0.95 would give flat 56, tail 2: 0.324652 at the ends)
    ],
)
def test_integer_flat_gaussian_hand_computed(length, ratio, expected):
    b = torch.zeros(1, length + 4, dtype=torch.bool)
    b[0, 2 : 2 + length] = True
    out = flat_gaussian_integer(b, torch.full(b.shape, ratio, dtype=torch.float64))[0]
    assert out[2 : 2 + length].tolist() == pytest.approx(expected, abs=1e-5)
    assert out[:2].sum() == 0 and out[2 + length :].sum() == 0


def test_a_run_reaching_the_end_uses_the_end_ratio():
    # UCF: interior runs 0.55, a run ending on the last valid snippet 0.6 -> a run of 7 has tails inside,
    # none at the end (flat 4, tail 1)
    inner = paper_rule_labels([0.0] * 5 + [0.9] * 7 + [0.0] * 5)
    end = paper_rule_labels([0.0] * 10 + [0.9] * 7)
    assert inner[5:12].tolist() == pytest.approx([0.324652, 1, 1, 1, 1, 1, 0.324652], abs=1e-5)
    assert end[10:].tolist() == [1.0] * 7


def test_integer_lengths_are_computed_in_double_precision_like_the_authors():
    out = paper_rule_labels([0.0] * 5 + [0.95] * 60 + [0.0] * 5, XD)  # XD: flat ratio 0.95 -> int(57.0) = 57
    assert out[5:65].tolist() == [1.0] * 60


@pytest.mark.parametrize("rule", ["paper", "release"])
def test_release_levels_must_exist_in_the_model(rule):
    cfg = CarConfig(rule=rule, release=ReleaseCarConfig(levels=[0, 1, 5]))
    scores, mask = torch.full((1, 3, 32), 0.9), torch.ones(1, 3, 32, dtype=torch.bool)
    with pytest.raises(ConfigError, match="car.release.levels"):
        refine(scores, mask, torch.tensor([True]), 32, cfg)
