"""The registry against a real `mlflow server` with a PostgreSQL backend store (tests/services.py): the
registered model (model card, tags, signature, input example, a batch of videos of different lengths served
over HTTP by ``mlflow models serve``) and promotion on validation evidence only (the dataset's headline
metric, a floor even for the first champion, the same data and held-out videos, a minimum gain, a
validation twin for a model trained on every video, checks that plug in)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
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
from cplvad.tracking import registry
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
def names(mlflow_server, tmp_path, monkeypatch) -> list[str]:
    """The shared mlflow server for this test, with an experiment and a registered model of its own:
    ``--set`` overrides naming them (also for the CLI)."""
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_EXPERIMENT_NAME", PARENT_RUN_ENV, PIPELINE_RUN_ENV, "DVC_EXP_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    tag = uuid.uuid4().hex[:8]
    return [f"tracking.experiment=registry-{tag}", f"tracking.registered_model=cplvad-{tag}"]


def register(
    model_dir: Path,
    names: list[str],
    auc: float,
    *,
    checksum: str | None = CHECKSUM,
    validation: dict | None = None,
    dataset: str = "cplvad-demo",
    seed: int = 0,
) -> str:
    """Register a copy of ``model_dir`` with the given test metric, data checksum and ``meta.json``
    ``extra.validation`` (as training writes it), as the new candidate; its version."""
    config = tiny_config(*names)
    copy = Path(f"model-{uuid.uuid4().hex[:8]}")
    shutil.copytree(model_dir, copy)
    if validation is not None:
        update_meta(copy, validation={"videos": 4, "fraction": 0.2, "split": "s1", **validation})
    if seed:
        cfg = json.loads((copy / "config.json").read_text())
        (copy / "config.json").write_text(json.dumps({**cfg, "seed": seed}))
    return register_model(
        copy,
        open_parent(config),
        config,
        dataset=dataset,
        metrics={"frame_auc_binary": auc},
        data_checksum=checksum,
    )


def champion(names: list[str]) -> str | None:
    name = tiny_config(*names).tracking.registered_model
    try:
        return str(MlflowClient().get_model_version_by_alias(name, "champion").version)
    except mlflow.exceptions.MlflowException:
        return None


@pytest.mark.slow
def test_a_registered_version_carries_its_model_card_and_tags(model_dir, names):
    version = register(model_dir, names, 71.5, validation={"video_auc": 80.0, "video_ap": 75.0})
    name = tiny_config(*names).tracking.registered_model
    mv = MlflowClient().get_model_version(name, version)
    card = mv.description
    for text in (
        "## Data",
        CHECKSUM,
        "## Recipe",
        "CAR: on, rule `simple`",
        "## Validation (decides promotion)",
        "video AUC 80.0, video AP 75.0 on 4 held-out training videos",
        "## Test (a report; never decides)",
        "frame_auc_binary 71.50",
        "## Threshold",
        "## Known limits",
        "trained on synthetic demo videos",
    ):
        assert text in card, text
    _, meta = read_model_config(model_dir)
    assert f"{meta.extra['calibration']['threshold']:.4f}" in card
    assert mv.tags["validation.video_auc"] == "80.0" and mv.tags["validation.split"] == "s1"
    assert mv.tags["metric.frame_auc_binary"] == "71.5" and len(mv.tags["recipe"]) == 16
    assert (
        mv.tags["model_sha256"]
        == __import__("hashlib").sha256((model_dir / "model.pt").read_bytes()).hexdigest()
    )
    aliases = MlflowClient().get_registered_model(name).aliases
    assert aliases == {"candidate": version}


@pytest.mark.slow
def test_promotion_decides_on_validation_only_with_a_floor_the_same_data_and_a_margin(model_dir, names):
    config = tiny_config(*names)
    v1 = register(model_dir, names, 95.0)  # the best test number, but no validation split
    result = promote(config)
    assert not result.promoted and "has no validation video_auc" in result.reason
    assert "the test set never decides" in result.reason and champion(names) is None
    register(model_dir, names, 90.0, validation={"video_auc": 55.0}, seed=1)  # no champion yet, still refused
    result = promote(config)
    assert not result.promoted and "below the floor tracking.promote_floor = 60" in result.reason
    assert "validation video_auc 55.00" in result.reason and champion(names) is None
    v3 = register(model_dir, names, 60.0, validation={"video_auc": 70.0}, seed=1)
    result = promote(config)
    assert result.promoted and "no champion yet" in result.reason and champion(names) == v3
    register(model_dir, names, 99.0, validation={"video_auc": 90.0}, checksum="d" * 64, seed=1)
    result = promote(config)
    assert not result.promoted and "different data" in result.reason and "dddddddddddd" in result.reason
    register(model_dir, names, 99.0, validation={"video_auc": 90.0, "split": "s2"}, seed=1)
    result = promote(config)
    assert not result.promoted and "validation videos (split s2) differ" in result.reason
    register(model_dir, names, 10.0, validation={"video_auc": 70.3}, seed=1)  # +0.3 < 0.5
    result = promote(config)
    assert (
        not result.promoted
        and "tracking.promote_min_delta = 0.5" in result.reason
        and "+0.30" in result.reason
    )
    assert f"champion version {v3} kept" in result.reason
    v7 = register(model_dir, names, 10.0, validation={"video_auc": 70.6}, seed=1)  # a worse test number
    result = promote(config)
    assert result.promoted and champion(names) == v7 and "+0.60" in result.reason
    register(model_dir, names, 73.0, validation={"video_auc": 73.0}, seed=1)  # +2.4, the margin raised to 5
    res = CliRunner().invoke(
        cli, ["promote", *sum((["--set", n] for n in names), []), "--set", "tracking.promote_min_delta=5"]
    )
    assert (
        res.exit_code == 0 and "not promoted" in res.output and "= 5" in res.output and champion(names) == v7
    )
    assert v1 == "1"


@pytest.mark.slow
def test_a_chosen_version_the_headline_metric_of_xd_violence_and_extra_checks(model_dir, names):
    config = tiny_config(*names)
    sets = sum((["--set", n] for n in names), [])
    # XD-Violence decides on AP: this version's AUC is above the floor, its AP below
    xd = register(
        model_dir, names, 80.0, validation={"video_auc": 90.0, "video_ap": 50.0}, dataset="xd-violence"
    )
    result = promote(config)
    assert not result.promoted and "validation video_ap 50.00" in result.reason
    assert promote(tiny_config(*names, "tracking.promote_metric=video_auc")).promoted  # configurable
    assert champion(names) == xd
    # a version named on the command line (e.g. one a DVC experiment registered without alias)
    other = register(
        model_dir, names, 80.0, validation={"video_auc": 95.0, "video_ap": 96.0}, dataset="xd-violence"
    )
    MlflowClient().set_registered_model_alias(config.tracking.registered_model, "candidate", xd)
    res = CliRunner().invoke(
        cli, ["promote", "--version", other, *sets, "--set", "tracking.promote_metric=video_auc"]
    )
    assert res.exit_code == 0 and "promoted" in res.output and champion(names) == other
    res = CliRunner().invoke(cli, ["promote", "--version", "99", *sets])
    assert res.exit_code == 2 and "has no version 99" in res.output
    # further checks plug in beside registry.CHECKS
    later = register(
        model_dir, names, 80.0, validation={"video_auc": 99.0, "video_ap": 99.0}, dataset="xd-violence"
    )
    result = promote(
        config, checks=[*registry.CHECKS, lambda ctx: f"feedback says no to {ctx.candidate.version}"]
    )
    assert (
        not result.promoted
        and result.reason.startswith(f"feedback says no to {later}")
        and champion(names) == other
    )


@pytest.mark.slow
def test_a_model_trained_on_every_video_is_judged_by_its_validation_twin(model_dir, names):
    """The paper recipes train on the whole published training set: the same recipe, seed and data trained
    with a held-out split (its twin) gives the validation evidence (docs/protocol.md, Promotion)."""
    config = tiny_config(*names)
    full = register(model_dir, names, 88.0, seed=5)  # no validation split of its own
    result = promote(config, full)
    assert not result.promoted and "no validation twin is registered" in result.reason
    twin = register(model_dir, names, 85.0, validation={"video_auc": 77.0}, seed=5)
    other_seed = register(model_dir, names, 85.0, validation={"video_auc": 99.0}, seed=6)  # not a twin
    result = promote(config, full)
    assert result.promoted and champion(names) == full, result.reason
    assert f"validation video_auc 77.00 (from its validation twin version {twin})" in result.reason
    assert other_seed not in result.reason


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
def test_the_registered_model_serves_a_batch_of_videos_of_different_lengths(model_dir, names, mlflow_server):
    register(model_dir, names, 70.0)
    _, meta = read_model_config(model_dir)
    uri = f"models:/{tiny_config(*names).tracking.registered_model}@candidate"
    info = mlflow.models.get_model_info(uri)
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
            uri,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": mlflow_server,  # the venv's uvicorn, as when activated
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
