"""eval.report_author_protocol: the authors' test-script post-processing as labelled extra keys, never
mixed into the published metrics."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.ndimage import gaussian_filter, median_filter
from sklearn.metrics import roc_auc_score

from cplvad.cli import cli
from cplvad.eval import AUTHOR_KEYS, METRIC_KEYS, compute_metrics, validate
from cplvad.eval.baselines import random_predictions
from cplvad.eval.predictions import Predictions


@pytest.fixture()
def noisy(demo_dataset):
    return validate(
        random_predictions(demo_dataset, demo_dataset.test_lengths_from_features(), seed=3), demo_dataset
    )


@pytest.mark.parametrize("script", ["ucf", "xd"])
def test_published_keys_are_identical_with_the_option_on_and_off(demo_dataset, noisy, script):
    off = compute_metrics(demo_dataset, noisy)
    on = compute_metrics(demo_dataset, noisy, author_script=script)
    assert list(off) == list(METRIC_KEYS)
    assert list(on) == [*METRIC_KEYS, *AUTHOR_KEYS]
    assert {k: on[k] for k in METRIC_KEYS} == off
    assert all(on[k] is not None for k in AUTHOR_KEYS)


def test_filters_run_over_the_concatenated_test_videos(demo_dataset, noisy):
    """test_xd.py: median 5 then Gaussian 3 over all videos' scores end to end (not video by video)."""
    gt = demo_dataset.frame_ground_truth(noisy.lengths)
    fps = demo_dataset.frames_per_snippet
    concatenated = gaussian_filter(median_filter(noisy.binary.astype(np.float64), size=5), sigma=3.0)
    per_video = np.concatenate(
        [
            gaussian_filter(median_filter(b.astype(np.float64), size=5), sigma=3.0)
            for _, b, _ in noisy.videos()
        ]
    )
    m = compute_metrics(demo_dataset, noisy, author_script="xd")
    expected = 100 * roc_auc_score(gt, np.repeat(concatenated, fps))
    assert m["author_protocol.frame_auc_binary"] == pytest.approx(expected, abs=1e-4)
    assert (
        abs(expected - 100 * roc_auc_score(gt, np.repeat(per_video, fps))) > 1e-3
    )  # the data tells them apart


def test_ucf_script_filters_the_branches_differently(demo_dataset, noisy):
    """test_ucf.py: binary through a sigmoid, median 5, Gaussian 3; category (1 - P[normal]) Gaussian 3 only."""
    gt = demo_dataset.frame_ground_truth(noisy.lengths)
    fps = demo_dataset.frames_per_snippet
    binary = gaussian_filter(
        median_filter(1 / (1 + np.exp(-noisy.binary.astype(np.float64))), size=5), sigma=3.0
    )
    category = gaussian_filter(1 - noisy.classes[:, 0].astype(np.float64), sigma=3.0)
    m = compute_metrics(demo_dataset, noisy, author_script="ucf")
    assert m["author_protocol.frame_auc_binary"] == pytest.approx(
        100 * roc_auc_score(gt, np.repeat(binary, fps)), abs=1e-4
    )
    assert m["author_protocol.frame_auc_category"] == pytest.approx(
        100 * roc_auc_score(gt, np.repeat(category, fps)), abs=1e-4
    )


def test_metrics_command_writes_both_sets_of_keys(demo_manifest, noisy, tmp_path):
    pred = tmp_path / "p.npz"
    Predictions.from_videos(list(noisy.videos())).save(pred)
    runs = {}
    for flag in ("false", "true"):
        out = tmp_path / f"m-{flag}.json"
        res = CliRunner().invoke(
            cli,
            [
                "metrics",
                "--dataset",
                str(demo_manifest),
                "--predictions",
                str(pred),
                "--out",
                str(out),
                "--set",
                f"eval.report_author_protocol={flag}",
                "--set",
                "eval.author_script=xd",
            ],
        )
        assert res.exit_code == 0, res.output
        runs[flag] = json.loads(out.read_text())
    assert set(runs["true"]) == set(METRIC_KEYS) | set(AUTHOR_KEYS) and set(runs["false"]) == set(METRIC_KEYS)
    assert {k: runs["true"][k] for k in METRIC_KEYS} == runs["false"]
