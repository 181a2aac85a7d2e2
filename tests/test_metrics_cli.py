import json

import numpy as np
import pytest
from click.testing import CliRunner

from cplvad.cli import cli
from cplvad.errors import DataError
from cplvad.eval import Predictions, compute_metrics, validate
from cplvad.eval.baselines import oracle_predictions, random_predictions
from cplvad.eval.metrics import METRIC_KEYS, smooth_per_video


@pytest.fixture()
def oracle(demo_dataset):
    return oracle_predictions(demo_dataset, demo_dataset.test_lengths_from_features())


def test_oracle_scores_perfect_frame_metrics(demo_dataset, oracle):
    m = compute_metrics(demo_dataset, validate(oracle, demo_dataset))
    assert list(m) == list(METRIC_KEYS)
    # snippet scores cannot follow annotation edges inside a snippet, hence "almost" 100
    for key in ("frame_auc_binary", "frame_ap_binary", "frame_auc_category", "frame_ap_category"):
        assert 99.9 < m[key] <= 100.0
    # UCF-style GT: the normal class never matches ("A" vs "Normal"), the 4 anomaly classes are perfect
    assert m["map_avg"] == pytest.approx(100.0 * 4 / 5)


def test_random_is_near_chance(demo_dataset):
    pred = random_predictions(demo_dataset, demo_dataset.test_lengths_from_features(), seed=1)
    m = compute_metrics(demo_dataset, validate(pred, demo_dataset))
    assert 35 < m["frame_auc_binary"] < 65 and m["map_avg"] < 20


def test_metrics_command_writes_json_and_prints_table(demo_manifest, oracle, tmp_path):
    pred_path, out = tmp_path / "p.npz", tmp_path / "m.json"
    oracle.save(pred_path)
    res = CliRunner().invoke(
        cli, ["metrics", "--dataset", str(demo_manifest), "--predictions", str(pred_path), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "frame_auc_binary" in res.output and "map_avg" in res.output
    assert json.loads(out.read_text())["frame_auc_binary"] > 99.9


def test_predictions_are_reordered_to_the_test_list(demo_dataset, oracle):
    items = list(oracle.videos())[::-1]
    shuffled = Predictions.from_videos(items)
    ordered = validate(shuffled, demo_dataset)
    assert ordered.names == demo_dataset.test.names
    np.testing.assert_array_equal(ordered.binary, oracle.binary)


def _mutate(oracle, **changes):
    items = [(n, b.copy(), c.copy()) for n, b, c in oracle.videos()]
    return items


@pytest.mark.parametrize(
    "mutation, fragment",
    [
        (lambda it: it[1:], "missing"),
        (lambda it: it + [("Ghost_demo", it[0][1], it[0][2])], "not in the test list"),
        (lambda it: it + [it[0]], "more than once"),
        (lambda it: [(n, np.where(np.arange(len(b)) == 3, np.nan, b), c) for n, b, c in it], "NaN"),
        (lambda it: [(n, b, c * 0.5) for n, b, c in it], "sum to"),
        (lambda it: [(n, b * 2 + 0.1, c) for n, b, c in it], "[0, 1]"),
        (
            lambda it: [(n, b[:-1], c[:-1]) if i == 0 else (n, b, c) for i, (n, b, c) in enumerate(it)],
            "feature file has",
        ),
        (lambda it: [(n, b, c[:, :3]) for n, b, c in it], "columns"),
    ],
)
def test_bad_predictions_name_the_video_and_write_nothing(
    demo_manifest, demo_dataset, oracle, tmp_path, mutation, fragment
):
    items = mutation(_mutate(oracle))
    pred = Predictions.from_videos(
        [(n, np.asarray(b, np.float32), np.asarray(c, np.float32)) for n, b, c in items]
    )
    path, out = tmp_path / "bad.npz", tmp_path / "m.json"
    pred.save(path)
    with pytest.raises(DataError) as err:
        validate(Predictions.load(path), demo_dataset, source=str(path))
    assert fragment in str(err.value)
    res = CliRunner().invoke(
        cli, ["metrics", "--dataset", str(demo_manifest), "--predictions", str(path), "--out", str(out)]
    )
    assert res.exit_code == 2 and fragment in res.output
    assert not out.exists()


def test_malformed_prediction_files(tmp_path):
    np.savez(tmp_path / "a.npz", names=np.array(["a"]), lengths=np.array([2]))
    with pytest.raises(DataError, match="missing arrays"):
        Predictions.load(tmp_path / "a.npz")
    np.savez(
        tmp_path / "b.npz",
        names=np.array(["a"]),
        lengths=np.array([2]),
        binary=np.zeros(3),
        classes=np.zeros((3, 2)),
    )
    with pytest.raises(DataError, match="sum\\(lengths\\)"):
        Predictions.load(tmp_path / "b.npz")
    np.savez(
        tmp_path / "c.npz",
        names=np.array([{"x": 1}], dtype=object),
        lengths=np.array([1]),
        binary=np.zeros(1),
        classes=np.zeros((1, 2)),
    )
    with pytest.raises(DataError, match="pickle"):
        Predictions.load(tmp_path / "c.npz")


def test_smoothing_never_crosses_video_boundaries():
    scores = np.array([0, 0, 0, 1, 1, 1], dtype=np.float32)
    out = smooth_per_video(scores, np.array([3, 3]), 3)
    np.testing.assert_allclose(out, scores)
    out = smooth_per_video(np.array([0, 3, 0], dtype=np.float32), np.array([3]), 3)
    np.testing.assert_allclose(out, [1, 1, 1])


def test_demo_data_and_baseline_commands(tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "demo-data",
            "--out",
            str(tmp_path / "d"),
            "--set",
            "demo.train_normal=2",
            "--set",
            "demo.train_abnormal=2",
            "--set",
            "demo.test_normal=1",
            "--set",
            "demo.test_abnormal=3",
        ],
    )
    assert res.exit_code == 0, res.output
    manifest = tmp_path / "d" / "dataset.yaml"
    assert manifest.is_file()
    res = runner.invoke(
        cli, ["baseline", "--dataset", str(manifest), "--kind", "random", "--out", str(tmp_path / "r.npz")]
    )
    assert res.exit_code == 0, res.output
    assert len(Predictions.load(tmp_path / "r.npz").names) == 4
    res = runner.invoke(cli, ["demo-data", "--out", str(tmp_path / "e"), "--set", "demo.seed=x"])
    assert res.exit_code == 2 and "demo.seed" in res.output
