"""The scoring pipeline end to end with KFP's local SubprocessRunner (``python -m pipelines run-local --pipeline
scoring``): demo test videos scored in two shards with the glitch model (tests/glitch.py) into an output
folder, the index, the review page and the MLflow run; a second run skips every video."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from cplvad.config import DemoConfig
from cplvad.extract.demo_videos import write_demo_videos

REPO = Path(__file__).resolve().parents[1]


def run_local(args: list[str], tmp_path: Path, tracking: str) -> str:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    res = subprocess.run(
        [sys.executable, "-m", "pipelines", "run-local", "--pipeline", "scoring", "--tiny", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    assert "scoring pipeline finished" in res.stdout
    return res.stdout


@pytest.mark.slow
def test_scoring_pipeline_runs_locally_and_a_second_run_skips_every_video(model_dir, tmp_path):
    demo = write_demo_videos(
        tmp_path / "demo", DemoConfig(train_normal=1, train_abnormal=1, test_normal=1, test_abnormal=1)
    ).parent
    source, out = demo / "videos" / "test", tmp_path / "scores"
    videos = sorted(p.stem for p in source.rglob("*.mp4"))
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "--source-uri",
        str(source),
        "--model-uri",
        str(model_dir),
        "--out-uri",
        str(out),
        "--shards",
        "2",
    ]
    first = run_local([*args, "--out", str(tmp_path / "root1")], tmp_path, tracking)

    assert sorted(p.name for p in out.iterdir() if p.name not in ("clips", "monitor")) == sorted(
        [f"{v}.json" for v in videos] + [f"{v}.png" for v in videos] + ["index.json", "index.html"]
    )
    assert len(list((out / "monitor").rglob("*.json"))) == 2  # a score histogram per shard (writer)
    index = json.loads((out / "index.json").read_text())
    assert (index["count"], index["scored"], index["failed"]) == (2, 2, 0)
    doc = json.loads((out / f"{videos[0]}.json").read_text())
    assert doc["schema"] == "cplvad-prediction/1" and doc["input"].endswith(f"{videos[0]}.mp4")
    shards = sorted((tmp_path / "root1").glob("cplvad-scoring-*/for-loop-*/score-shard/scores/shard.json"))
    assert [json.loads(p.read_text())["videos"] for p in shards] == [1, 1]
    assert '"scored": 2, "skipped": 0' in first
    page = (out / "index.html").read_text()
    assert page.count('class="video"') == 2 and 'src="../demo/videos/test/' in page

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json") if p.name != "index.json"}
    second = run_local([*args, "--out", str(tmp_path / "root2")], tmp_path, tracking)
    assert '"scored": 0, "skipped": 2' in second
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json") if p.name != "index.json"} == mtimes

    mlflow.set_tracking_uri(tracking)
    runs = MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("cplvad").experiment_id],
        "tags.`cplvad.run` = 'scoring'",
        order_by=["attributes.start_time ASC"],
    )
    assert [(r.data.metrics["scored"], r.data.metrics["skipped"]) for r in runs] == [(2, 0), (0, 2)]
    version = json.loads((model_dir / "meta.json").read_text())  # a model directory: the weights checksum
    assert runs[0].data.params["model_version"].startswith("sha256:") and version["classes"] == [
        "Normal",
        "Glitch",
    ]
    assert runs[0].data.params["model_uri"] == str(model_dir)
    assert {a.path for a in MlflowClient().list_artifacts(runs[0].info.run_id)} == {
        "index.json",
        "index.html",
        "scoring.json",
    }
