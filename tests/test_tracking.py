"""MLflow tracking on the demo's default SQLite store: a tracked run (nested stage runs, dataset lineage,
the registered version with its validation split), promotion through the CLI, models:/ URIs, and the
ablation grid and seeds, which register nothing and move no alias (tiny model, demo data). The registry and
promotion rules themselves are tested against a real mlflow server in test_registry.py."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import tiny_cli_args
from mlflow import MlflowClient

from cplvad.cli import cli
from cplvad.config import load_config
from cplvad.errors import CplvadError
from cplvad.modeling.factory import is_model_dir
from cplvad.tracking.registry import promote, resolve_model


def sets(*extra):
    return tiny_cli_args(*extra)


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    """Each test gets its own sqlite tracking store (./mlflow.db) and artifact root."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return tmp_path


VALIDATION = "train.validation_fraction=0.34"
"""Holds out 2 of the 6 normal and 2 of the 6 abnormal training videos of the demo fixture."""
NO_FLOOR = "tracking.promote_floor=0"
"""Two tiny epochs on 4 held-out videos say little: the mechanics are tested here, the floor elsewhere."""


@pytest.mark.slow  # end-to-end: trains and registers
def test_run_is_tracked_registered_and_promoted(demo_manifest, in_tmp):
    runner = CliRunner()
    res = runner.invoke(
        cli, ["run", "--dataset", str(demo_manifest), "--out", "run", "--quiet", *sets(VALIDATION)]
    )
    assert res.exit_code == 0, res.output
    record = json.loads((in_tmp / "run/mlflow_run.json").read_text())
    assert record["model_version"] == "1" and record["tracking_uri"] == f"sqlite:///{in_tmp / 'mlflow.db'}"

    mlflow.set_tracking_uri(record["tracking_uri"])
    client = MlflowClient()
    parent = client.get_run(record["run_id"])
    assert parent.data.params["train.epochs"] == "2" and "frame_auc_binary" in parent.data.metrics
    assert (
        parent.data.tags["cplvad.dataset"] == "cplvad-demo"
        and len(parent.data.tags["cplvad.data_checksum"]) == 64
    )
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{record['run_id']}'"
    )
    names = {c.info.run_name for c in children}
    assert names == {"train_stage1", "pseudo_labels", "train_stage2", "evaluate"}
    stage1 = next(c for c in children if c.info.run_name == "train_stage1")
    history = client.get_metric_history(stage1.info.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2]
    pseudo = next(c for c in children if c.info.run_name == "pseudo_labels")
    assert {"pseudo_b_positive_fraction", "pseudo_agreement"} <= set(pseudo.data.metrics)
    evaluate = next(c for c in children if c.info.run_name == "evaluate")
    artifacts = {a.path for a in client.list_artifacts(evaluate.info.run_id, "plots")}
    assert {"plots/roc_binary.csv", "plots/pr_category.csv", "plots/timelines.png"} <= artifacts

    assert json.loads((in_tmp / "run/mlflow_parent.json").read_text())["run_id"] == record["run_id"]
    assert parent.info.status == "FINISHED"

    version = client.get_model_version_by_alias("cplvad", "candidate")
    assert str(version.version) == "1" and version.tags["dataset"] == "cplvad-demo"
    assert version.tags["data_checksum"] == parent.data.tags["cplvad.data_checksum"]
    assert version.tags["validation.videos"] == "4" and float(version.tags["validation.video_auc"]) >= 0
    assert (
        "## Validation (decides promotion)" in version.description
        and parent.info.run_id in version.description
    )
    # dataset lineage: the training list, its held-out videos and the test list, each with its digest
    contexts = {
        next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
        for i in parent.inputs.dataset_inputs
    }
    assert set(contexts) == {"training", "validation", "testing"}
    assert contexts["validation"].digest == version.tags["validation.split"]
    assert contexts["training"].name == "cplvad-demo/train" and len(contexts["testing"].digest) == 32

    config = load_config(None, [NO_FLOOR])
    first = promote(config)
    assert first.promoted and "no champion yet" in first.reason and "validation video_auc" in first.reason
    again = promote(config)
    assert not again.promoted and "already the champion" in again.reason

    # a second run (other seed) becomes the candidate; held out from another seed, its validation videos
    # differ from the champion's: the two numbers do not compare
    res = runner.invoke(
        cli, ["run", "--dataset", str(demo_manifest), "--out", "run2", "--quiet", *sets(VALIDATION, "seed=1")]
    )
    assert res.exit_code == 0, res.output
    cand = client.get_model_version_by_alias("cplvad", "candidate")
    assert str(cand.version) == "2" and cand.tags["validation.split"] != version.tags["validation.split"]
    res = runner.invoke(cli, ["promote", "--set", NO_FLOOR])
    assert res.exit_code == 0 and "not promoted" in res.output and "differ from the champion's" in res.output
    assert str(client.get_model_version_by_alias("cplvad", "champion").version) == "1"

    # the champion loads back by URI: as a model directory, and as an MLflow pyfunc
    model_dir = resolve_model("models:/cplvad@champion", config)
    assert is_model_dir(model_dir)
    res = runner.invoke(
        cli,
        [
            "evaluate",
            "--dataset",
            str(demo_manifest),
            "--model",
            "models:/cplvad@champion",
            "--out",
            "champion.json",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (
        json.loads((in_tmp / "champion.json").read_text()).keys()
        == json.loads((in_tmp / "run/metrics.json").read_text()).keys()
    )
    batch = pd.DataFrame({"name": ["long", "short"], "features": [np.zeros((40, 512)), np.ones((7, 512))]})
    out = mlflow.pyfunc.load_model("models:/cplvad@champion").predict(batch)
    assert [r["name"] for r in out] == ["long", "short"]
    assert [np.shape(r["anomaly"]) for r in out] == [(40,), (7,)] and np.shape(out[1]["classes"]) == (7, 5)


@pytest.mark.slow  # end-to-end: trains and registers
def test_a_rerun_with_the_same_outputs_links_to_its_original_run(demo_manifest, in_tmp):
    """A second execution that produces the very same model and metrics (what a DVC experiment restored
    from the run cache does) gets a run of its own, linked to the first by a tag, and no second version."""
    runner = CliRunner()
    for out in ("a", "b"):
        res = runner.invoke(cli, ["run", "--dataset", str(demo_manifest), "--out", out, "--quiet", *sets()])
        assert res.exit_code == 0, res.output
    first, second = (json.loads((in_tmp / out / "mlflow_run.json").read_text()) for out in ("a", "b"))
    assert first["run_id"] != second["run_id"] and first["original_run"] is None
    assert (
        second["original_run"] == first["run_id"] and second["model_version"] == first["model_version"] == "1"
    )
    client = MlflowClient(first["tracking_uri"])
    run = client.get_run(second["run_id"])
    assert (
        run.data.tags["cplvad.original_run"] == first["run_id"]
        and run.data.tags["cplvad.model_version"] == "1"
    )
    assert len(client.search_model_versions("name = 'cplvad'")) == 1
    with pytest.raises(CplvadError, match="has no version 9"):
        promote(load_config(None), "9")
    with pytest.raises(CplvadError, match="cannot fetch"):
        resolve_model("models:/no-such-model@champion", load_config(None))


def test_promote_without_candidate_is_a_clear_error(in_tmp):
    res = CliRunner().invoke(cli, ["promote"])
    assert res.exit_code == 2 and "has no 'candidate'" in res.output


@pytest.mark.slow  # end-to-end: trains and registers
def test_ablation_grid(demo_manifest, in_tmp):
    res = CliRunner().invoke(
        cli, ["ablate", "--dataset", str(demo_manifest), "--out", "abl", "--quiet", *sets()]
    )
    assert res.exit_code == 0, res.output
    lines = (in_tmp / "abl/ablation.md").read_text().splitlines()
    assert len(lines) == 2 + 6 and "cross, CAR on (CPL-VAD)" in lines[-1]
    assert (in_tmp / "abl/ablation.png").stat().st_size > 1000
    csv_rows = (in_tmp / "abl/ablation.csv").read_text().splitlines()
    assert csv_rows[0].startswith("row,supervision,car,frame_auc_binary") and len(csv_rows) == 7
    mlflow.set_tracking_uri(f"sqlite:///{in_tmp / 'mlflow.db'}")
    client = MlflowClient()
    parent = client.search_runs(
        [client.get_experiment_by_name("cplvad").experiment_id], "attributes.run_name = 'ablation'"
    )
    assert len(parent) == 1
    children = client.search_runs(
        [parent[0].info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent[0].info.run_id}'"
    )
    assert len(children) == 6
    assert not client.search_registered_models()  # a sweep registers nothing, so it moves no alias


def test_relative_stores_are_anchored_at_the_dvc_project_root(tmp_path, monkeypatch):
    from cplvad.tracking.runs import absolute_sqlite, artifact_location, dvc_experiment_tags

    project, copy = tmp_path / "project", tmp_path / "exps" / "tmp123"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)  # a queued experiment runs in a temporary copy...
    monkeypatch.setenv("DVC_ROOT", str(project))  # ...and DVC names the original project
    assert absolute_sqlite("sqlite:///mlflow.db") == f"sqlite:///{project / 'mlflow.db'}"
    assert absolute_sqlite("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert artifact_location(load_config(None), "sqlite:///x") == (project / "mlruns").as_uri()
    assert (
        artifact_location(load_config(None, ["tracking.artifact_location=arts"]), "http://h")
        == (project / "arts").as_uri()
    )
    assert (
        artifact_location(load_config(None, ["tracking.artifact_location=s3://b/m"]), "http://h")
        == "s3://b/m"
    )
    assert artifact_location(load_config(None), "http://server:5000") is None  # the server decides
    monkeypatch.setenv("DVC_EXP_NAME", "smooth-2")
    assert dvc_experiment_tags() == {"dvc.exp_name": "smooth-2"}
    monkeypatch.delenv("DVC_ROOT")
    assert absolute_sqlite("sqlite:///mlflow.db") == f"sqlite:///{copy / 'mlflow.db'}"  # outside DVC: the cwd
