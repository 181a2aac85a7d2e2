"""The real `dvc repro` on a copy of this repository (demo videos, tiny settings), and a DVC S3 remote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from conftest import empty_bucket
from mlflow import MlflowClient

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMALL = {
    "demo": {"train_normal": 4, "train_abnormal": 4, "test_normal": 2, "test_abnormal": 3},
    "model": {"max_len": 32, "width": 32, "heads": 2, "levels": 3, "stem_blocks": 1, "window": 4},
    "train": {"epochs": 2, "batch_size": 8},
    "extract": {"workers": 1},
}

STAGES = ("demo_videos", "prepare_data", "train_stage1", "pseudo_labels", "train_stage2", "evaluate", "track")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dvc-repro")]  # one repro per worker, not per test


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _copy_repo(dst: Path, settings: dict[str, dict] = SMALL) -> Path:
    """The tracked files of this repository (as committed or being committed), in a fresh git repo, with
    ``settings`` in its params.yaml."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        if (REPO / rel).is_file() and not rel.startswith(("data/", "outputs/")):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    for section, values in settings.items():
        params[section].update(values)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ):
        sh(cmd, dst)
    return dst


@pytest.fixture(scope="session")  # at most one per xdist worker, even with other modules' tests in between
def reproduced(tmp_path_factory) -> tuple[Path, str]:
    repo = _copy_repo(tmp_path_factory.mktemp("repo"))
    log = sh([str(BIN / "dvc"), "repro"], repo)
    return repo, log


def test_repro_runs_every_stage_and_tracks_the_run(reproduced):
    repo, log = reproduced
    for stage in STAGES:
        assert f"Running stage '{stage}'" in log
    for rel in (
        "data/dataset/features/train.csv",
        "data/dataset/features/test.extraction.json",
        "outputs/stage1/model.pt",
        "outputs/pseudo.npz",
        "outputs/stage2/meta.json",
        "outputs/eval/predictions.npz",
        "outputs/eval/plots/roc_binary.csv",
        "outputs/eval/plots/timelines.png",
    ):
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
    children = client.search_runs(
        [run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{record['run_id']}'"
    )
    assert {c.info.run_name for c in children} == {
        "extract",
        "train_stage1",
        "pseudo_labels",
        "train_stage2",
        "evaluate",
    }
    version = client.get_model_version_by_alias("cplvad", "candidate")
    assert str(version.version) == record["model_version"] == "1" and record["alias"] == "candidate"
    assert "## Validation (decides promotion)" in version.description  # the model card
    shown = json.loads(sh([str(BIN / "dvc"), "metrics", "show", "--json"], repo))
    assert record["run_id"] in json.dumps(shown)  # the run id is a metric of the workspace


def test_second_repro_does_no_work(reproduced):
    repo, _ = reproduced
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs_before = len(
        MlflowClient().search_runs([e.experiment_id for e in MlflowClient().search_experiments()])
    )
    log = sh([str(BIN / "dvc"), "repro"], repo)
    assert "Running stage" not in log
    assert "up to date" in log.lower()
    runs_after = len(
        MlflowClient().search_runs([e.experiment_id for e in MlflowClient().search_experiments()])
    )
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
    assert "evaluate" in status and "train_stage1" not in status and "prepare_data" not in status


def test_cache_round_trip_through_an_s3_remote(reproduced, s3_env, tmp_path):
    repo, _ = reproduced
    client = empty_bucket("dvc-store")
    dvc = str(BIN / "dvc")
    env = {**_env(), **{k: os.environ[k] for k in os.environ if k.startswith("AWS_")}}
    for cmd in (
        [dvc, "remote", "add", "-d", "store", "s3://dvc-store/cplvad"],
        [dvc, "remote", "modify", "store", "endpointurl", s3_env],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pipeline results + remote"],
    ):
        sh(cmd, repo, env)
    pushed = sh([dvc, "push"], repo, env)
    assert "pushed" in pushed.lower()
    objects = client.list_objects_v2(Bucket="dvc-store", Prefix="cplvad/")
    assert objects["KeyCount"] > 10

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], repo)
    sh([dvc, "pull"], clone, env)
    for rel in ("outputs/stage2/model.pt", "outputs/pseudo.npz", "data/dataset/features/train.csv"):
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes(), rel
    status = sh([dvc, "status"], clone, env)
    assert "up to date" in status.lower()


def test_editing_model_code_marks_the_stages_that_run_it_changed(reproduced):
    repo, _ = reproduced
    source = repo / "src/cplvad/modeling/dual_branch.py"
    original = source.read_text()
    source.write_text(original + "\n# an edit\n")
    try:
        status = sh([str(BIN / "dvc"), "status"], repo)
    finally:
        source.write_text(original)
    changed = {line.strip().rstrip(":") for line in status.splitlines() if line and not line[0].isspace()}
    assert changed == {"train_stage1", "pseudo_labels", "train_stage2", "evaluate", "track"}, status
    assert "src/cplvad/modeling" in status
    assert "up to date" in sh([str(BIN / "dvc"), "status"], repo).lower()


def _set_params(repo: Path, **sections: dict) -> str:
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    for section, values in sections.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return original


def test_a_builtin_benchmark_by_params_and_back_to_the_demo_from_the_run_cache(reproduced, mini_releases):
    repo, _ = reproduced
    dvc = str(BIN / "dvc")
    demo = {
        rel: (repo / rel).read_bytes()
        for rel in ("outputs/eval/metrics.json", "outputs/stage2/model.pt", "data/dataset/dataset.yaml")
    }
    first = json.loads((repo / "outputs/mlflow_run.json").read_text())  # the demo's run
    original = _set_params(
        repo, data={"dataset": "ucf-crime", "features_root": str(mini_releases["ucf-crime"])}
    )
    try:
        log = sh([dvc, "repro"], repo)
        assert "Running stage 'demo_videos'" not in log
        for stage in STAGES[1:]:  # the data step resolves the release (no extraction), then everything runs
            assert f"Running stage '{stage}'" in log
        assert "cplvad datasets prepare ucf-crime" in log  # the data choice, templated from params.yaml
        assert yaml.safe_load((repo / "data/dataset/dataset.yaml").read_text())["name"] == "ucf-crime"
        assert not (repo / "data/dataset/features").exists()
        predictions = np.load(repo / "outputs/eval/predictions.npz", allow_pickle=False)
        assert len(predictions["names"]) == 290
        assert json.loads((repo / "outputs/eval/metrics.json").read_text())["frame_auc_binary"] is not None
    finally:
        (repo / "params.yaml").write_text(original)
    log = sh([dvc, "repro"], repo)
    for stage in STAGES[1:-1]:  # nothing is retrained or re-extracted: DVC's run cache restores it...
        assert f"Running stage '{stage}'" not in log
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in log
    for rel, content in demo.items():
        assert (repo / rel).read_bytes() == content, rel
    assert "Running stage 'track'" in log  # ...and MLflow hears of it: a run linked to the original
    again = json.loads((repo / "outputs/mlflow_run.json").read_text())
    assert again["run_id"] != first["run_id"] and again["model_version"] == first["model_version"]
    assert again["original_run"] == (first["original_run"] or first["run_id"])


def _find(tree, name: str) -> list[dict]:
    """Every mapping in a JSON tree whose ``name`` is ``name``."""
    if isinstance(tree, dict):
        return ([tree] if tree.get("name") == name else []) + [
            x for v in tree.values() for x in _find(v, name)
        ]
    if isinstance(tree, list):
        return [x for v in tree for x in _find(v, name)]
    return []


def test_queued_experiments_track_to_the_project_store(reproduced):
    """Two queued experiments with the same parameters: the second restores its stages from DVC's run cache,
    yet both are found in MLflow under their names (the second linked to the first's run), `dvc exp show`
    lists their run ids, neither moves `candidate` or `champion`, and the model is registered once."""
    repo, _ = reproduced
    dvc = str(BIN / "dvc")
    for cmd in (
        ["git", "config", "user.name", "t"],
        ["git", "config", "user.email", "t@t"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "baseline", "--allow-empty"],
    ):
        sh(cmd, repo)
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    aliases = client.get_registered_model("cplvad").aliases
    versions = len(client.search_model_versions("name = 'cplvad'"))
    for name in ("smooth-2", "smooth-2-again"):
        sh([dvc, "exp", "run", "--queue", "-S", "eval.smoothing=2", "-n", name], repo)
    log = sh([dvc, "exp", "run", "--run-all"], repo)  # each in a temporary copy of the project, in order
    assert log.count("Running stage 'evaluate'") == 1 and log.count("Running stage 'track'") == 2
    assert "Stage 'evaluate' is cached - skipping run" in log  # the second experiment: from the run cache
    assert "Running stage 'train_stage1'" not in log and "Running stage 'train_stage2'" not in log

    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = {}
    for name in ("smooth-2", "smooth-2-again"):
        (run,) = client.search_runs(experiments, f"tags.`dvc.exp_name` = '{name}'")
        assert run.info.run_name == name and run.data.params["eval.smoothing"] == "2"
        assert run.info.artifact_uri.startswith((repo / "mlruns").as_uri())  # the project's, not the copy's
        runs[name] = run
    first, second = runs["smooth-2"], runs["smooth-2-again"]
    assert "cplvad.original_run" not in first.data.tags  # new metrics (smoothing 2), a new version
    assert second.data.tags["cplvad.original_run"] == first.info.run_id
    assert second.data.tags["cplvad.model_version"] == first.data.tags["cplvad.model_version"]
    assert len(client.search_model_versions("name = 'cplvad'")) == versions + 1  # registered once
    assert client.get_registered_model("cplvad").aliases == aliases  # experiments move no alias

    shown = json.loads(sh([dvc, "exp", "show", "--json"], repo))
    for name, run in runs.items():
        entries = json.dumps(_find(shown, name))
        assert run.info.run_id in entries, name  # dvc exp show has the MLflow run id of each experiment


GOOD_RECIPE = [
    "seed=1",
    "train.epochs=20",
    "train.lr=0.003",
    "train.batch_size=8",
    "train.validation_fraction=0.25",
]
"""The tiny settings that learn the demo features of ``DemoConfig(seed=1, 24 + 24 training videos)``: the
final model's video AUC on its 6 + 6 held-out videos is 100, and 22 after one epoch (measured; seeded)."""


def test_an_experiment_moves_no_alias_and_promote_refuses_its_bad_model(mlflow_server, tmp_path):
    """A good pipeline (`dvc repro`) becomes candidate and champion; a one-epoch `dvc exp run` registers its
    model without touching either alias, and `cplvad promote --version` refuses it below the floor, with
    its reason. Against a real mlflow server (PostgreSQL backend store)."""
    import uuid

    from conftest import TINY_PARAMS

    from cplvad.config import DemoConfig, load_config
    from cplvad.data.demo import write_demo_dataset

    repo = _copy_repo(tmp_path / "repo")
    manifest = write_demo_dataset(
        tmp_path / "features",
        DemoConfig(seed=1, train_normal=24, train_abnormal=24, test_normal=4, test_abnormal=4),
    )
    name = f"hygiene-{uuid.uuid4().hex[:8]}"
    config = load_config(
        TINY_PARAMS,
        [
            *GOOD_RECIPE,
            f"data.dataset={manifest}",
            f"tracking.experiment={name}",
            f"tracking.registered_model={name}",
        ],
    )
    params = config.model_dump(mode="json")
    params["demo"] = yaml.safe_load((repo / "params.yaml").read_text())["demo"]  # the small demo videos
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**_env(), "MLFLOW_TRACKING_URI": mlflow_server, "OMP_NUM_THREADS": "1"}  # as measured
    for cmd in (
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "recipe"],
    ):
        sh(cmd, repo, env)
    dvc, cplvad = str(BIN / "dvc"), str(BIN / "cplvad")

    sh([dvc, "repro"], repo, env)
    client = MlflowClient(mlflow_server)
    good = client.get_model_version_by_alias(name, "candidate")
    assert good.version == "1" and float(good.tags["validation.video_auc"]) >= 60  # the recipe learns
    promoted = sh([cplvad, "promote"], repo, env)
    assert "promoted: no champion yet: version 1 (validation video_auc" in " ".join(promoted.split())

    sh([dvc, "exp", "run", "-S", "train.epochs=1", "-n", "one-epoch"], repo, env)
    versions = client.search_model_versions(f"name = '{name}'")
    bad = max(versions, key=lambda v: int(v.version))
    assert bad.version == "2" and float(bad.tags["validation.video_auc"]) < 60
    (run,) = client.search_runs(
        [client.get_run(bad.run_id).info.experiment_id], "tags.`dvc.exp_name` = 'one-epoch'"
    )
    assert run.info.run_id == bad.run_id  # the experiment's run registered it...
    assert client.get_registered_model(name).aliases == {
        "candidate": "1",
        "champion": "1",
    }  # ...and moved none

    refused = " ".join(sh([cplvad, "promote", "--version", "2"], repo, env).split())
    assert "not promoted: version 2: validation video_auc" in refused
    assert (
        "is below the floor tracking.promote_floor = 60" in refused and "champion version 1 kept" in refused
    )
    assert client.get_registered_model(name).aliases == {"candidate": "1", "champion": "1"}
    record = json.loads((repo / "outputs/mlflow_run.json").read_text())  # the experiment's, in the workspace
    assert record["model_version"] == "2" and record["alias"] is None
