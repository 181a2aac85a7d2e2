"""``car.rule: release`` against an independent port of the authors' ``Generate_gt`` (tests/release_port.py),
snippet by snippet, on synthetic multi-level sequences with both datasets' numbers."""

import numpy as np
import pytest
import torch
from release_port import UCF, XD, generate_gt, synthetic_sequences

from cplvad.config import CarConfig, ReleaseCarConfig
from cplvad.errors import ConfigError
from cplvad.pseudo.rules import refine

VIDEOS = 200
N = 192
NUMBERS = {"ucf-crime": UCF, "xd-violence": XD}


def release_config(numbers: dict, keep_slips: bool = True) -> CarConfig:
    """Our settings from the release's: grouping g -> max_gap g - 1, filter f -> min_length f + 2."""
    return CarConfig(
        rule="release",
        keep_topk=False,
        release=ReleaseCarConfig(
            max_gap=numbers["grouping"] - 1,
            min_length=numbers["filter"] + 2,
            vote_sum=numbers["cumulative"],
            flat_ratio=numbers["flat1"],
            flat_ratio_end=numbers["flat2"],
            keep_slips=keep_slips,
        ),
    )


@pytest.fixture(scope="module")
def sequences():
    return synthetic_sequences(VIDEOS, N)


@pytest.fixture(scope="module")
def port(sequences):
    """The port's result per dataset and video: as released, and with the slice end moved by one."""
    scores, _, lengths = sequences
    return {
        dataset: [
            (generate_gt(scores[v], int(n), numbers), generate_gt(scores[v], int(n), numbers, fix_slip=True))
            for v, n in enumerate(lengths)
        ]
        for dataset, numbers in NUMBERS.items()
    }


def ours(sequences, cfg: CarConfig) -> np.ndarray:
    scores, masks, _ = sequences
    abnormal = torch.ones(len(scores), dtype=torch.bool)
    return refine(torch.from_numpy(scores), torch.from_numpy(masks), abnormal, N, cfg).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("dataset", NUMBERS)
def test_release_rule_reproduces_generate_gt_snippet_by_snippet(sequences, port, dataset):
    labels = ours(sequences, release_config(NUMBERS[dataset]))
    _, _, lengths = sequences
    touching_end = positive_videos = 0
    for v, length in enumerate(lengths):
        released, _ = port[dataset][v]
        assert (labels[v, :length] > 0).astype(int).tolist() == released.mask, f"video {v}"
        np.testing.assert_allclose(labels[v, :length], released.labels, atol=1e-6, err_msg=f"video {v}")
        assert labels[v, length:].sum() == 0
        positive_videos += any(released.mask)
        touching_end += length - 1 in released.segment_ends
    # the sequences exercise the rule: many videos with positives, kept segments ending on the last snippet
    assert positive_videos >= VIDEOS // 4 and touching_end >= 10, (positive_videos, touching_end)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", NUMBERS)
def test_without_the_slip_only_last_snippets_of_segments_change(sequences, port, dataset):
    fixed = ours(sequences, release_config(NUMBERS[dataset], keep_slips=False)) > 0
    _, _, lengths = sequences
    changed_videos = end_of_video_runs = 0
    for v, length in enumerate(lengths):
        released, repaired = port[dataset][v]
        differ = set(np.flatnonzero(fixed[v, :length] != np.array(released.mask, dtype=bool)).tolist())
        assert differ <= released.segment_ends, f"video {v}: {sorted(differ - released.segment_ends)}"
        changed_videos += bool(differ)
        # and it is exactly the release's code with the slice end moved by one
        assert fixed[v, :length].astype(int).tolist() == repaired.mask, f"video {v}"
        end_of_video_runs += bool(repaired.mask[-1])
    assert changed_videos >= 5 and end_of_video_runs >= 5, (changed_videos, end_of_video_runs)


def test_slips_kept_never_label_the_last_snippet_so_the_end_ratio_never_applies(sequences):
    labels = ours(sequences, release_config(UCF))
    _, _, lengths = sequences
    assert all(labels[v, length - 1] == 0 for v, length in enumerate(lengths))


def test_the_release_rule_needs_the_integer_flat_gaussian():
    with pytest.raises(ValueError, match="integer"):
        CarConfig(rule="release", release=ReleaseCarConfig(discretisation="continuous"))
    CarConfig(rule="paper", release=ReleaseCarConfig(discretisation="continuous"))


def test_the_old_rule_name_names_both_new_ones(tmp_path):
    from cplvad.config import load_config

    with pytest.raises(ConfigError) as err:
        load_config(None, ["car.rule=official"])
    assert "'paper'" in str(err.value) and "'release'" in str(err.value)
    params = tmp_path / "old.yaml"
    params.write_text("car:\n  official:\n    vote_sum: 33\n")
    with pytest.raises(ConfigError, match=r"car\.official: renamed car\.release"):
        load_config(params)
    with pytest.raises(ConfigError, match="registered: simple, paper, release"):
        load_config(None, ["car.rule=majority"])


def test_a_model_directory_trained_with_the_old_rule_name_reads_as_the_paper_rule():
    from cplvad.config import Config, config_from_dict, upgrade_written_config

    stored = Config().to_dict()
    stored["car"]["official"] = stored["car"].pop("release")
    del stored["car"]["official"]["keep_slips"]
    stored["car"]["official"]["vote_sum"] = 33.0
    stored["car"]["rule"] = "official"
    config = config_from_dict(upgrade_written_config(stored), "config.json")
    assert config.car.rule == "paper" and config.car.release.vote_sum == 33.0
    assert stored["car"]["rule"] == "official"  # the caller's mapping is left as it was
