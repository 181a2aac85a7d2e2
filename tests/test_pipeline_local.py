"""The training pipeline end to end with KFP's local SubprocessRunner (``python -m pipelines run-local``):
freshly generated demo videos, two extraction shards, stage 1, pseudo labels, stage 2, evaluation and
MLflow registration, with tiny settings (about two minutes on two cores); and a built-in benchmark's
published release chosen in the ``data`` parameters, trained on without any extraction."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from cplvad.modeling.factory import is_model_dir

REPO = Path(__file__).resolve().parents[1]


def _run_local(tmp_path: Path, *args: str) -> tuple[Path, str]:
    """``python -m pipelines run-local --tiny ARGS`` into ``tmp_path``, tracked in a fresh SQLite store:
    the pipeline run's folder and the tracking URI."""
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "MLFLOW_TRACKING_URI": tracking,
    }
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    res = subprocess.run(
        [sys.executable, "-m", "pipelines", "run-local", "--tiny", "--out", str(tmp_path / "root"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    assert "training pipeline finished" in res.stdout and "frame_auc_binary = " in res.stdout
    # the evaluate step's ClassificationMetrics: the ROC curve and the frames at the calibrated threshold
    assert re.search(
        r"ROC: [1-9]\d* points; confusion matrix .* at threshold 0\.\d+: \[\[\d+, \d+\], \[\d+, \d+\]\]",
        res.stdout,
    )
    (run,) = (tmp_path / "root").glob("cplvad-training-*")
    return run, tracking


@pytest.mark.slow
def test_training_pipeline_runs_locally_end_to_end(tmp_path):
    run, tracking = _run_local(tmp_path, "--shards", "2")

    # extraction fanned out over two shards, merged into one self-contained dataset artifact
    shards = sorted(run.glob("for-loop-*-iteration-*/extract-features/features"))
    assert len(shards) == 2
    for k, shard in enumerate(shards):
        assert (shard / f"train.shard{k}-of-2.csv").is_file() and (
            shard / f"test.shard{k}-of-2.extraction.json"
        ).is_file()
    dataset = run / "merge-features" / "dataset"
    for name in (
        "dataset.yaml",
        "annotations.txt",
        "features/train.csv",
        "features/test.csv",
        "features/train.extraction.json",
        "features/test.extraction.json",
    ):
        assert (dataset / name).is_file(), name
    train_rows = (dataset / "features" / "train.csv").read_text().splitlines()[1:]
    assert len(train_rows) == 6 and all(
        (dataset / "features" / r.split(",")[0]).is_file() for r in train_rows
    )
    assert not (dataset / "videos").exists()  # the videos stay in the source artifact

    # models, pseudo labels, evaluation
    assert is_model_dir(run / "train-stage1" / "model") and is_model_dir(run / "train-stage2" / "model")
    with np.load(run / "pseudo-labels" / "pseudo" / "pseudo.npz") as z:
        assert z["pseudo_b"].shape == z["pseudo_c"].shape and len(z["keys"]) == 6
    metrics = json.loads((run / "evaluate" / "metrics").read_text())
    assert 0 <= metrics["frame_auc_binary"] <= 100 and "map_avg" in metrics
    evaluation = run / "evaluate" / "evaluation"
    for name in (
        "metrics.json",
        "predictions.npz",
        "summary.json",
        "plots/roc_binary.csv",
        "plots/timelines.png",
    ):
        assert (evaluation / name).is_file(), name
    report = (run / "evaluate" / "report").read_text()
    assert "frame_auc_binary" in report and "data:image/png;base64," in report

    # MLflow: one parent run with the stage runs, the final model registered as candidate
    record = (run / "register" / "report").read_text()
    assert "version 1" in record
    mlflow.set_tracking_uri(tracking)
    client = MlflowClient()
    version = client.get_model_version_by_alias("cplvad", "candidate")
    assert str(version.version) == "1" and version.tags["dataset"] == "cplvad-demo-videos"
    parent = client.get_run(version.run_id)
    assert parent.data.metrics["frame_auc_binary"] == pytest.approx(metrics["frame_auc_binary"])
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert sorted(c.info.run_name for c in children) == [
        "evaluate",
        "extract",
        "pseudo_labels",
        "train_stage1",
        "train_stage2",
    ]
    # opened by the first step (found by the others through the pipeline run's name), closed by register
    assert parent.data.tags["cplvad.pipeline_run"].startswith("local-") and parent.info.status == "FINISHED"
    assert parent.info.start_time < min(c.info.start_time for c in children)
    stage1 = next(c for c in children if c.info.run_name == "train_stage1")
    assert [m.step for m in client.get_metric_history(stage1.info.run_id, "train_loss")] == [1, 2]
    assert version.tags["data_checksum"] == parent.data.tags["cplvad.data_checksum"]
    # lineage: the lists of the dataset artifact the pipeline trained and evaluated on
    sources = {i.dataset.name: i.dataset.source for i in parent.inputs.dataset_inputs}
    assert str(dataset / "features" / "train.csv") in sources["cplvad-demo-videos/train"]
    assert str(dataset / "features" / "test.csv") in sources["cplvad-demo-videos/test"]


@pytest.mark.slow
def test_training_pipeline_trains_on_a_published_release_without_extraction(mini_releases, tmp_path):
    """``data.dataset=ucf-crime`` with its features folder, as pipeline parameters: the data plan takes the
    published-features branch (no videos, no shards, no merge), and training, pseudo labels, evaluation on
    all 290 test videos and registration read that dataset."""
    release = mini_releases["ucf-crime"]
    run, tracking = _run_local(
        tmp_path, "--set", "data.dataset=ucf-crime", "--set", f"data.features_root={release}"
    )
    assert sorted(p.name for p in run.iterdir()) == [
        "evaluate",
        "open-run",
        "plan-data",
        "pseudo-labels",
        "register",
        "resolve-data",
        "split-params",
        "train-stage1",
        "train-stage2",
    ]
    manifest = yaml.safe_load((run / "resolve-data" / "dataset" / "dataset.yaml").read_text())
    assert manifest["train_features_root"] == str(release.resolve())  # the release is read where it is
    assert is_model_dir(run / "train-stage2" / "model")
    with np.load(run / "pseudo-labels" / "pseudo" / "pseudo.npz") as z:
        assert len(z["keys"]) == 12  # the miniature release: 6 training videos x 2 crops
    with np.load(run / "evaluate" / "evaluation" / "predictions.npz") as z:
        assert len(z["names"]) == 290
    mlflow.set_tracking_uri(tracking)
    version = MlflowClient().get_model_version_by_alias("cplvad", "candidate")
    assert version.tags["dataset"] == "ucf-crime"
