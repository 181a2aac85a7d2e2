"""--seeds: every metric per seed and as mean ± sample standard deviation (run, ablate, MLflow)."""

import csv
import json

import conftest
import mlflow
import pytest
from click.testing import CliRunner
from matplotlib.container import ErrorbarContainer
from mlflow import MlflowClient

from cplvad.cli import cli
from cplvad.config import load_config
from cplvad.errors import ConfigError
from cplvad.workflow.ablation import GRID, _chart, _track, summarise_rows, write_reports
from cplvad.workflow.seeds import parse_seeds, summarise, track_seeds


def test_parse_seeds():
    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("7") == [7]
    for bad in ("0,x", "1,1", "-1", ""):
        with pytest.raises(ConfigError, match="--seeds"):
            parse_seeds(bad)


def test_summary_is_mean_and_sample_std_hand_computed():
    per_seed = {0: {"auc": 60.0, "ap": None}, 1: {"auc": 70.0, "ap": 5.0}, 2: {"auc": 80.0, "ap": 6.0}}
    s = summarise(per_seed)
    # mean 70; sample std sqrt(((-10)^2 + 0 + 10^2) / 2) = 10; a metric undefined for one seed has none
    assert (
        s["seeds"] == [0, 1, 2]
        and s["mean"] == {"auc": 70.0, "ap": None}
        and s["std"] == {"auc": 10.0, "ap": None}
    )
    assert s["per_seed"]["1"] == {"auc": 70.0, "ap": 5.0}
    assert summarise({3: {"auc": 61.0}})["std"] == {"auc": None}  # one seed: no spread


def grid_rows(offset: float, validation: bool = True):
    rows = []
    for i, r in enumerate(GRID):
        metrics = {
            "frame_auc_binary": 60.0 + i + offset,
            "frame_ap_binary": 20.0 + offset,
            "frame_auc_category": 50.0,
            "frame_ap_category": 10.0,
            "map_avg": None if i == 0 else 3.0,
        }
        if validation:
            metrics["val_video_auc"] = 80.0 + offset
        rows.append({"row": r.label, "supervision": r.supervision or "none", "car": r.car, **metrics})
    return rows


def test_ablation_reports_mean_std_per_seed_and_error_bars(tmp_path):
    rows = summarise_rows({0: grid_rows(0.0), 1: grid_rows(2.0)})
    assert rows[5]["frame_auc_binary"] == 66.0 and rows[5]["frame_auc_binary_std"] == pytest.approx(
        1.4142, abs=1e-4
    )
    assert rows[0]["map_avg"] is None and rows[1]["map_avg_std"] == 0.0
    write_reports(rows, tmp_path)
    md = (tmp_path / "ablation.md").read_text()
    assert "over seeds 0, 1" in md and "| cross, CAR on (CPL-VAD) | 66.00 ± 1.41 | 21.00 ± 1.41 |" in md
    assert "validation video AUC" in md and "81.00 ± 1.41 |" in md
    assert "| cross, CAR on (CPL-VAD) | 1 | 67.00 | 22.00 |" in md  # the per-seed table
    table = list(csv.reader((tmp_path / "ablation.csv").read_text().splitlines()))
    assert (
        table[0][:5] == ["row", "supervision", "car", "seed", "frame_auc_binary"] and len(table) == 1 + 6 * 4
    )
    assert table[-2][3:5] == ["mean", "66.0"] and table[-1][3:5] == ["std", "1.4142"]
    assert (tmp_path / "ablation.png").stat().st_size > 1000
    assert any(isinstance(c, ErrorbarContainer) for c in _chart(rows).axes[0].containers)
    single = grid_rows(0.0, validation=False)  # one seed (e.g. the Kubeflow pipeline's rows): no error bars
    assert not any(isinstance(c, ErrorbarContainer) for c in _chart(single).axes[0].containers)


@pytest.fixture()
def tracking(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return MlflowClient()


def children_of(client, run):
    return client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")


def test_ablation_seeds_are_grandchild_runs(demo_manifest, tmp_path, tracking):
    rows = summarise_rows({0: grid_rows(0.0), 1: grid_rows(2.0)})
    write_reports(rows, tmp_path)
    _track(rows, tmp_path, demo_manifest, load_config(None))
    client = tracking
    parent = client.search_runs(
        [client.get_experiment_by_name("cplvad").experiment_id], "attributes.run_name = 'ablation'"
    )[0]
    row_runs = children_of(client, parent)
    assert len(row_runs) == 6
    cross = next(r for r in row_runs if r.info.run_name == "cross, CAR on (CPL-VAD)")
    assert cross.data.metrics["frame_auc_binary"] == 66.0 and cross.data.metrics[
        "std.frame_auc_binary"
    ] == pytest.approx(1.4142)
    seeds = children_of(client, cross)
    assert sorted(r.data.params["seed"] for r in seeds) == ["0", "1"]
    assert sorted(r.data.metrics["frame_auc_binary"] for r in seeds) == [65.0, 67.0]


@pytest.mark.slow
def test_run_with_seeds_end_to_end_and_tracked(demo_manifest, tmp_path, tracking):
    out = tmp_path / "run"
    args = [
        "run",
        "--dataset",
        str(demo_manifest),
        "--out",
        str(out),
        "--seeds",
        "0,1",
        "--no-track",
        "--quiet",
        *conftest.tiny_cli_args("train.epochs=1"),
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "metrics.json").read_text())
    per_seed = {s: json.loads((out / f"seed-{s}" / "metrics.json").read_text()) for s in ("0", "1")}
    assert summary["seeds"] == [0, 1] and summary["per_seed"] == per_seed
    assert per_seed["0"] != per_seed["1"]  # the seeds trained different models
    auc = [per_seed[s]["frame_auc_binary"] for s in ("0", "1")]
    assert summary["mean"]["frame_auc_binary"] == pytest.approx(sum(auc) / 2, abs=1e-4)
    assert summary["std"]["frame_auc_binary"] == pytest.approx(abs(auc[0] - auc[1]) / 2**0.5, abs=1e-4)
    assert "mean ± std" in res.output and "seed 1" in res.output
    client = tracking
    assert client.get_experiment_by_name("cplvad") is None  # --no-track logged nothing

    run_id = track_seeds(demo_manifest, out, summary, load_config(None))
    parent = client.get_run(run_id)
    assert parent.data.params["seed"] == "0,1" and "std.frame_auc_binary" in parent.data.metrics
    assert sorted(c.info.run_name for c in children_of(client, parent)) == ["seed 0", "seed 1"]
    assert not client.search_registered_models()  # a sweep registers nothing, so it moves no alias
