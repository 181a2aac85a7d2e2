"""MLflow while the stages run: stage commands attach nested runs to one parent run (by record file, by
pipeline key, by run id), log per-epoch losses as the epochs end, and ``track`` adds only the stages that did
not log themselves and closes the parent."""

import json

import mlflow
import pytest
from click.testing import CliRunner
from conftest import crash_in_third_epoch, tiny_cli_args, tiny_config
from mlflow import MlflowClient

from cplvad.cli import cli
from cplvad.errors import ConfigError
from cplvad.tracking.pipeline_run import PARENT_RUN_ENV, PIPELINE_RUN_ENV, PIPELINE_RUN_TAG, find_parent


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", PARENT_RUN_ENV, PIPELINE_RUN_ENV):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def children(client: MlflowClient, parent_id: str) -> list:
    experiment_id = client.get_run(parent_id).info.experiment_id
    return client.search_runs(
        [experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'", order_by=["attributes.start_time ASC"]
    )


def losses(client: MlflowClient, run) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_loss"))


@pytest.mark.slow
def test_stage_commands_log_live_into_one_parent_that_track_closes(demo_manifest, in_tmp, monkeypatch):
    runner = CliRunner()
    opts = [*tiny_cli_args("train.epochs=3", "train.checkpoint_seconds=0"), "--mlflow-parent", "parent.json"]
    train = ["train", "--dataset", str(demo_manifest), "--stage", "1", "--out", "s1", "--quiet", *opts]
    with monkeypatch.context() as m:  # interrupted in its third epoch: the first two are already logged
        crash_in_third_epoch(m)
        assert runner.invoke(cli, train).exit_code != 0
    parent_id = json.loads((in_tmp / "parent.json").read_text())["run_id"]
    mlflow.set_tracking_uri(f"sqlite:///{in_tmp / 'mlflow.db'}")
    client = MlflowClient()
    (killed,) = children(client, parent_id)
    assert killed.info.status == "KILLED" and killed.data.tags["cplvad.stage"] == "train_stage1"
    assert losses(client, killed) == [1, 2]
    assert client.get_run(parent_id).info.status == "RUNNING"

    res = runner.invoke(cli, train)  # resumes from the checkpoint, in the same parent
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        cli,
        [
            "evaluate",
            "--dataset",
            str(demo_manifest),
            "--model",
            "s1",
            "--out",
            "m.json",
            "--plots",
            "plots",
            "--quiet",
            *opts,
        ],
    )
    assert res.exit_code == 0, res.output
    # pseudo labels without a parent: `track` adds their run from the file
    res = runner.invoke(
        cli,
        [
            "pseudo-labels",
            "--dataset",
            str(demo_manifest),
            "--model",
            "s1",
            "--out",
            "p.npz",
            "--quiet",
            *tiny_cli_args(),
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        cli,
        [
            "track",
            "--dataset",
            str(demo_manifest),
            "--stage1",
            "s1",
            "--pseudo",
            "p.npz",
            "--metrics",
            "m.json",
            "--plots",
            "plots",
            "--out",
            "record.json",
            *opts,
        ],
    )
    assert res.exit_code == 0, res.output

    record = json.loads((in_tmp / "record.json").read_text())
    assert record["run_id"] == parent_id and record["model_version"] == "1"
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and "frame_auc_binary" in parent.data.metrics
    assert parent.data.params["train.epochs"] == "3" and len(parent.data.tags["cplvad.data_checksum"]) == 64
    runs = children(client, parent_id)
    finished = {r.data.tags["cplvad.stage"]: r for r in runs if r.info.status == "FINISHED"}
    assert sorted(finished) == ["evaluate", "pseudo_labels", "train_stage1"] and len(runs) == 4
    assert losses(client, finished["train_stage1"]) == [1, 2, 3]
    assert "calibrated_threshold" in finished["train_stage1"].data.metrics
    assert {"pseudo_agreement", "pseudo_b_positive_fraction"} <= set(finished["pseudo_labels"].data.metrics)
    assert {a.path for a in client.list_artifacts(finished["evaluate"].info.run_id, "plots")} >= {
        "plots/timelines.png"
    }
    assert client.get_model_version("cplvad", "1").run_id == parent_id

    # the recorded parent is closed: the next pipeline execution opens its own
    res = runner.invoke(
        cli,
        ["evaluate", "--dataset", str(demo_manifest), "--model", "s1", "--out", "m2.json", "--quiet", *opts],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((in_tmp / "parent.json").read_text())["run_id"] != parent_id


def test_a_pipeline_key_or_a_run_id_names_the_parent(in_tmp, monkeypatch):
    config = tiny_config()
    assert find_parent(config) is None  # nothing names a pipeline: not tracked
    monkeypatch.setenv(PIPELINE_RUN_ENV, "cplvad-training-abc12")
    first = find_parent(config)
    assert find_parent(config, record=in_tmp / "ignored.json") == first  # the key wins over a record file
    assert not (in_tmp / "ignored.json").exists()
    mlflow.set_tracking_uri(f"sqlite:///{in_tmp / 'mlflow.db'}")
    assert MlflowClient().get_run(first).data.tags[PIPELINE_RUN_TAG] == "cplvad-training-abc12"
    monkeypatch.setenv(PIPELINE_RUN_ENV, "cplvad-training-xyz89")
    assert find_parent(config) != first
    monkeypatch.setenv(PARENT_RUN_ENV, first)
    assert find_parent(config) == first
    monkeypatch.delenv(PARENT_RUN_ENV)
    monkeypatch.setenv(PIPELINE_RUN_ENV, "x' OR '1'='1")
    with pytest.raises(ConfigError, match="CPLVAD_PIPELINE_RUN"):
        find_parent(config)


def test_tracking_without_mlflow_names_the_extra(in_tmp, monkeypatch):
    import sys

    from cplvad.errors import CplvadError
    from cplvad.tracking.registry import promote

    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    with pytest.raises(
        CplvadError, match=r"needs the Python package 'mlflow'.*pip install 'cplvad\[tracking\]'"
    ):
        find_parent(tiny_config(), record=in_tmp / "parent.json")
    with pytest.raises(CplvadError, match=r"cplvad\[tracking\]"):
        promote(tiny_config())
    assert find_parent(tiny_config()) is None  # nothing to track: mlflow is not needed
