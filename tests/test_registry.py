"""The registered model (signature, input example, a batch of videos of different lengths, served over HTTP
by ``mlflow models serve``) and the promotion gate (same data checksum, a minimum gain, the validation
metric when both models have one)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import tiny_config
from mlflow import MlflowClient
from services import free_port

from cplvad.cli import cli
from cplvad.modeling.factory import read_model_config, update_meta
from cplvad.tracking.pipeline_run import PARENT_RUN_ENV, PIPELINE_RUN_ENV, open_parent
from cplvad.tracking.registry import promote, register_model
from cplvad.tracking.serving import read_batch
from cplvad.workflow import train_stage

CHECKSUM = "c" * 64


@pytest.fixture(scope="module")
def model_dir(demo_manifest, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("registry") / "stage1"
    train_stage(demo_manifest, out, tiny_config(), stage=1, progress=False)
    return out


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """A fresh tracking store (./mlflow.db) for the test; returns its URI."""
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", PARENT_RUN_ENV, PIPELINE_RUN_ENV):
        monkeypatch.delenv(name, raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def register(
    model_dir: Path, auc: float, *, checksum: str | None = CHECKSUM, validation: float | None = None
) -> str:
    """Register a copy of ``model_dir`` as the new candidate, with the given test metric, data checksum and
    (as the issue-19 contract writes it into meta.json) validation video AUC."""
    config = tiny_config()
    copy = Path(f"model-{auc}-{validation}-{checksum and checksum[0]}")
    shutil.copytree(model_dir, copy)
    if validation is not None:
        update_meta(copy, validation={"video_auc": validation, "videos": 4, "fraction": 0.2})
    return register_model(
        copy,
        open_parent(config),
        config,
        dataset="cplvad-demo",
        metrics={"frame_auc_binary": auc},
        data_checksum=checksum,
    )


def champion() -> str:
    return str(MlflowClient().get_model_version_by_alias("cplvad", "champion").version)


@pytest.mark.slow
def test_promotion_needs_the_same_data_and_a_minimum_gain(model_dir, store):
    config = tiny_config()
    register(model_dir, 70.0)
    assert promote(config).promoted and champion() == "1"
    register(model_dir, 95.0, checksum="d" * 64)
    result = promote(config)
    assert not result.promoted and "different data" in result.reason and "dddddddddddd" in result.reason
    register(model_dir, 70.3)  # +0.3 < promote_min_delta 0.5
    result = promote(config)
    assert (
        not result.promoted
        and "tracking.promote_min_delta = 0.5" in result.reason
        and "+0.30" in result.reason
    )
    register(model_dir, 70.6)
    result = promote(config)
    assert result.promoted and champion() == "4" and "+0.60" in result.reason
    register(model_dir, 73.0)  # +2.4, but the margin is raised to 5 points
    res = CliRunner().invoke(cli, ["promote", "--set", "tracking.promote_min_delta=5"])
    assert res.exit_code == 0 and "not promoted" in res.output and "= 5" in res.output and champion() == "4"
    register(model_dir, 99.0, checksum=None)
    result = promote(config)
    assert not result.promoted and "carry no data checksum" in result.reason and champion() == "4"


@pytest.mark.slow
def test_promotion_compares_validation_auc_when_both_models_have_one(model_dir, store):
    config = tiny_config()
    register(model_dir, 80.0, validation=60.0)
    assert promote(config).promoted
    register(
        model_dir, 70.0, validation=65.0
    )  # worse on the test list, better on validation: validation decides
    result = promote(config)
    assert result.promoted and "validation.video_auc" in result.reason and champion() == "2"
    version = MlflowClient().get_model_version("cplvad", "2")
    assert version.tags["validation.video_auc"] == "65.0" and version.tags["validation.videos"] == "4"
    register(model_dir, 99.0, validation=65.2)  # the test metric is a report only
    assert not promote(config).promoted and champion() == "2"
    register(model_dir, 90.0)  # no validation split: the test metric decides (90 vs 70)
    result = promote(config)
    assert result.promoted and "frame_auc_binary" in result.reason and champion() == "4"


def test_batch_requests_are_read_row_by_row_with_clear_errors():
    videos = read_batch(
        pd.DataFrame({"name": ["a", None], "features": [np.zeros((3, 8)), [[1.0] * 8] * 5]}), 8
    )
    assert [(n, f.shape, f.dtype) for n, f in videos] == [
        ("a", (3, 8), np.float32),
        ("video1", (5, 8), np.float32),
    ]
    assert read_batch([{"features": np.ones((2, 8))}], 8)[0][1].shape == (2, 8)
    with pytest.raises(
        ValueError, match=r"row 0 \(x\): features of shape \(3, 4\); this model scores \(T, 8\)"
    ):
        read_batch([{"name": "x", "features": np.zeros((3, 4))}], 8)
    with pytest.raises(ValueError, match="row 1 .* not a non-empty"):
        read_batch([{"features": np.zeros((3, 8))}, {"features": [[1.0] * 8, [1.0] * 7]}], 8)
    with pytest.raises(ValueError, match="no 'features'"):
        read_batch([{"name": "y"}], 8)


def _post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.slow
def test_the_registered_model_serves_a_batch_of_videos_of_different_lengths(model_dir, store):
    register(model_dir, 70.0)
    _, meta = read_model_config(model_dir)
    info = mlflow.models.get_model_info("models:/cplvad@candidate")
    assert info.signature.inputs.input_names() == ["features", "name"]
    assert str(info.signature.inputs.inputs[0].type) == "Array(Array(double))"
    assert {"anomaly", "classes", "class_names"} <= set(info.signature.outputs.input_names())
    assert info.saved_input_example_info is not None

    port = free_port()
    exe = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [
            str(exe),
            "models",
            "serve",
            "-m",
            "models:/cplvad@candidate",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": store,  # the venv's uvicorn, as when activated
            "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow models serve did not start: {proc.stderr.read().decode()[-3000:]}")
                time.sleep(0.5)
        rng = np.random.default_rng(0)
        rows = [
            {"name": "short", "features": rng.normal(size=(5, meta.feature_dim)).tolist()},
            {"name": "long", "features": rng.normal(size=(300, meta.feature_dim)).tolist()},
        ]
        status, body = _post(f"{url}/invocations", {"dataframe_records": rows})
        assert status == 200, body
        short, long = body["predictions"]
        assert (short["name"], len(short["anomaly"]), np.shape(short["classes"])) == (
            "short",
            5,
            (5, len(meta.classes)),
        )
        assert (long["name"], len(long["anomaly"]), long["class_names"]) == ("long", 300, meta.classes)
        assert all(0.0 <= s <= 1.0 for s in long["anomaly"])
        status, body = _post(f"{url}/invocations", {"dataframe_records": [{"features": [[0.5] * 3]}]})
        assert status == 400 and f"this model scores (T, {meta.feature_dim})" in body["message"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
