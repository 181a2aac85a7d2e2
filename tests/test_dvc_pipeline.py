"""The real `dvc repro` on a copy of this repository (demo videos, tiny settings), and a DVC S3 remote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import mlflow
import pytest
import yaml
from mlflow import MlflowClient

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMALL = {
    "demo": {"train_normal": 4, "train_abnormal": 4, "test_normal": 2, "test_abnormal": 3},
    "model": {"max_len": 32, "width": 32, "heads": 2, "levels": 3, "stem_blocks": 1, "window": 4},
    "train": {"epochs": 2, "batch_size": 8},
    "extract": {"workers": 1},
}

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dvc-repro")]  # one repro per worker, not per test


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _copy_repo(dst: Path) -> Path:
    """The tracked files of this repository (as committed or being committed), in a fresh git repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if (REPO / rel).is_file() and not rel.startswith(("data/", "outputs/")):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    for section, values in SMALL.items():
        params[section].update(values)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        sh(cmd, dst)
    return dst


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> tuple[Path, str]:
    repo = _copy_repo(tmp_path_factory.mktemp("repo"))
    log = sh([str(BIN / "dvc"), "repro"], repo)
    return repo, log


def test_repro_runs_every_stage_and_tracks_the_run(reproduced):
    repo, log = reproduced
    for stage in ("demo_videos", "extract", "train_stage1", "pseudo_labels", "train_stage2", "evaluate", "track"):
        assert f"Running stage '{stage}'" in log
    for rel in ("data/features/train.csv", "data/features/test.extraction.json", "outputs/stage1/model.pt",
                "outputs/pseudo.npz", "outputs/stage2/meta.json", "outputs/eval/predictions.npz",
                "outputs/eval/plots/roc_binary.csv", "outputs/eval/plots/timelines.png"):
        assert (repo / rel).is_file(), rel
    metrics = json.loads((repo / "outputs/eval/metrics.json").read_text())
    assert set(metrics) >= {"frame_auc_binary", "frame_ap_binary", "map_avg"}

    shown = sh([str(BIN / "dvc"), "metrics", "show"], repo)
    assert "frame_auc_binary" in shown
    sh([str(BIN / "dvc"), "plots", "show", "-o", "dvc_plots"], repo)
    assert (repo / "dvc_plots/index.html").is_file()

    record = json.loads((repo / "outputs/mlflow_run.json").read_text())
    mlflow.set_tracking_uri(record["tracking_uri"])
    assert record["tracking_uri"] == f"sqlite:///{repo / 'mlflow.db'}"
    client = MlflowClient()
    run = client.get_run(record["run_id"])
    children = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{record['run_id']}'")
    assert {c.info.run_name for c in children} == {"extract", "train_stage1", "pseudo_labels", "train_stage2", "evaluate"}
    version = client.get_model_version_by_alias("cplvad", "candidate")
    assert str(version.version) == record["model_version"] == "1"


def test_second_repro_does_no_work(reproduced):
    repo, _ = reproduced
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs_before = len(MlflowClient().search_runs([e.experiment_id for e in MlflowClient().search_experiments()]))
    log = sh([str(BIN / "dvc"), "repro"], repo)
    assert "Running stage" not in log
    assert "up to date" in log.lower()
    runs_after = len(MlflowClient().search_runs([e.experiment_id for e in MlflowClient().search_experiments()]))
    assert runs_after == runs_before
    # changing one knob re-runs only what depends on it
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["eval"]["smoothing"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = sh([str(BIN / "dvc"), "status"], repo)
    finally:
        (repo / "params.yaml").write_text(original)
    assert "evaluate" in status and "train_stage1" not in status and "extract" not in status


def test_cache_round_trip_through_an_s3_remote(reproduced, s3_env, tmp_path):
    repo, _ = reproduced
    boto3.client("s3").create_bucket(Bucket="dvc-store")
    dvc = str(BIN / "dvc")
    env = {**_env(), **{k: os.environ[k] for k in os.environ if k.startswith("AWS_")}}
    for cmd in ([dvc, "remote", "add", "-d", "store", "s3://dvc-store/cplvad"],
                [dvc, "remote", "modify", "store", "endpointurl", s3_env],
                ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pipeline results + remote"]):
        sh(cmd, repo, env)
    pushed = sh([dvc, "push"], repo, env)
    assert "pushed" in pushed.lower()
    objects = boto3.client("s3").list_objects_v2(Bucket="dvc-store", Prefix="cplvad/")
    assert objects["KeyCount"] > 10

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], repo)
    sh([dvc, "pull"], clone, env)
    for rel in ("outputs/stage2/model.pt", "outputs/pseudo.npz", "data/features/train.csv"):
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes(), rel
    status = sh([dvc, "status"], clone, env)
    assert "up to date" in status.lower()
