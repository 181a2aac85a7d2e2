"""Hostile and unlucky users (issue 16): every failure is one clear line, no secret is ever printed, bad inputs
stop a command before its long work, paths stay inside their root, any file name is extracted, damaged state
is set aside, and a resumed extraction equals an uninterrupted one. Tiny settings throughout."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import conftest
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from test_extract import make_video
from test_extract import run as extract_run

import cplvad
import cplvad.cli.data as cli_data
import cplvad.extract.runner as runner_mod
import cplvad.train.trainer as trainer_mod
from cplvad.cli import cli
from cplvad.data import load_dataset
from cplvad.errors import DataError
from cplvad.redact import redact, redacted_output
from cplvad.tracking.pipeline_run import open_parent
from cplvad.tracking.runs import dataset_tags
from cplvad.workflow import train_stage

PASSWORD = "PASSWORD-of-issue-16"
TINY = conftest.tiny_cli_args()


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def one_line_error(output: str) -> str:
    """The output's error line; the output holds no traceback and exactly one error line."""
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def copy_demo(demo_manifest: Path, dst: Path) -> Path:
    shutil.copytree(demo_manifest.parent, dst)
    return dst / demo_manifest.name


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def hanging_up_server() -> Iterator[tuple[int, list[int]]]:
    """A server on 127.0.0.1 that is down behind its port: it accepts each connection and closes it at once.
    Yields its port and the list of connections it took (one item each), to count a client's attempts."""
    listener = socket.create_server(("127.0.0.1", 0))
    taken: list[int] = []

    def serve() -> None:
        with contextlib.suppress(OSError):  # the listener closed: done
            while True:
                listener.accept()[0].close()
                taken.append(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], taken
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join()


# ------------------------------------------------------------------------------------------ the boundary


def test_an_os_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    (tmp_path / "file").write_text("x")
    args = ["demo-data", "--out", str(tmp_path / "file" / "sub")]
    res = invoke(*args)
    assert res.exit_code == 2
    line = one_line_error(res.output)
    assert str(tmp_path / "file") in line and "File exists; something already exists there" in line
    for debug in (invoke("--debug", *args), invoke(*args, env={"CPLVAD_DEBUG": "1"})):
        assert debug.exit_code == 2 and "Traceback" in debug.output and "error:" in debug.output


def test_an_unexpected_error_is_a_bug_line_with_exit_3_and_no_secret(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError(f"boom while talking to http://user:{PASSWORD}@store.example/x?token=abc123")

    monkeypatch.setattr(cli_data, "write_demo_dataset", crash)
    res = invoke("demo-data", "--out", str(tmp_path / "d"))
    assert res.exit_code == 3
    line = one_line_error(res.output)
    assert "unexpected RuntimeError" in line and "bug" in line and "--debug" in line
    assert "http://user:***@store.example/x?token=***" in line
    debug = invoke("--debug", "demo-data", "--out", str(tmp_path / "d"))
    assert debug.exit_code == 3 and "Traceback" in debug.output and PASSWORD not in debug.output


def test_an_interrupt_says_how_to_resume(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_data, "write_demo_dataset", interrupted)
    res = invoke("demo-data", "--out", str(tmp_path / "d"))
    assert res.exit_code == 130 and "resume" in one_line_error(res.output)


# ----------------------------------------------------------------------------------------------- secrets


@pytest.mark.slow
def test_an_unreachable_tracking_server_fails_fast_before_training_and_never_shows_the_password(
    demo_manifest, tmp_path
):
    """In a real process: what MLflow, requests and urllib3 print or raise reaches the terminal only masked.
    Failing fast is counted, not timed: the server is asked at most twice (MLflow's default retries ask 8
    times, with back-off that took minutes)."""
    command = [
        sys.executable,
        "-c",
        "from cplvad.cli import main; main()",
        "run",
        "--dataset",
        str(demo_manifest),
        "--out",
        str(tmp_path / "run"),
        "--track",
        *TINY,
    ]
    with hanging_up_server() as (port, taken):
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"http://user:{PASSWORD}@127.0.0.1:{port}",
            "PYTHONPATH": str(Path(cplvad.__file__).parents[1]),
            "MLFLOW_LOGGING_LEVEL": "DEBUG",
        }
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    line = one_line_error(done.stderr)
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:" in line and "--no-track" in line
    assert PASSWORD not in done.stdout + done.stderr
    assert not (tmp_path / "run").exists() and "epoch" not in done.stderr  # stopped before training
    assert 1 <= len(taken) <= 2, f"the tracking server was asked {len(taken)} times"


@pytest.mark.slow
def test_credentials_are_masked_in_output_logs_warnings_and_mlflow(
    demo_dataset, tmp_path, monkeypatch, capsys
):
    url = f"http://user:{PASSWORD}@mlflow.example:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "another-secret-value")
    log_file = tmp_path / "cplvad.log"
    handler = logging.FileHandler(log_file)
    loggers = [
        logging.getLogger(),
        logging.getLogger("mlflow"),
    ]  # MLflow's logger does not propagate once set up
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with redacted_output():
            print(f"View run at: {url}/#/experiments/1")  # what MLflow writes to stdout
            logging.getLogger("mlflow.utils.rest_utils").warning("retrying %s", url)
            try:
                raise ConnectionError(f"cannot reach {url}; auth another-secret-value")
            except ConnectionError:
                logging.getLogger("urllib3").exception("failed")
            warnings.warn(f"slow server {url}", stacklevel=1)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
    captured = capsys.readouterr()
    logged = log_file.read_text()
    assert "http://user:***@mlflow.example:5000" in captured.out and "retrying http://user:***@" in logged
    for text in (captured.out, captured.err, logged):
        assert PASSWORD not in text and "another-secret-value" not in text

    # what we log to MLflow: the params (tracking.tracking_uri) and the record of `track`
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    config = conftest.tiny_config(f"tracking.tracking_uri={url}")
    run_id = open_parent(config, tags=dataset_tags(demo_dataset))  # every parameter, the data's tags
    import mlflow

    run = mlflow.MlflowClient().get_run(run_id)
    assert run.data.params["tracking.tracking_uri"] == "http://mlflow.example:5000"  # stored without it
    assert not any(PASSWORD in str(v) for v in (*run.data.params.values(), *run.data.tags.values()))
    assert (
        redact(f"GET {url}/api?X-Amz-Signature=abcd&x=1 Bearer abcdefghijkl")
        == "GET http://user:***@mlflow.example:5000/api?X-Amz-Signature=***&x=1 Bearer ***"
    )


# -------------------------------------------------------------------------------------------- preflight


@pytest.mark.parametrize(
    "split,fault",
    [("test", "truncated"), ("test", "wrong width"), ("test", "NaN"), ("train", "data cut short")],
)
def test_a_bad_feature_file_stops_run_before_stage_1_and_leaves_no_output(
    demo_manifest, tmp_path, split, fault
):
    manifest = copy_demo(demo_manifest, tmp_path / "data")
    features = getattr(load_dataset(manifest), split)
    path = features.locate(features.videos[-1].rows[0])
    good = np.load(path)
    if fault == "wrong width":
        np.save(path, good[:, :100])
    elif fault == "NaN":
        np.save(path, np.where(np.arange(len(good))[:, None] == 3, np.nan, good).astype(np.float32))
    else:
        path.write_bytes(path.read_bytes()[: 100 if fault == "truncated" else -4])
    res = invoke("run", "--dataset", str(manifest), "--out", str(tmp_path / "run"), "--no-track", *TINY)
    assert res.exit_code == 2
    line = one_line_error(res.output)
    assert str(path) in line and f"demo_{split}.csv:" in line
    assert {
        "truncated": "not a readable .npy",
        "wrong width": "100-d features",
        "NaN": "NaN/inf",
        "data cut short": "is truncated: its header announces",
    }[fault] in line
    assert not (tmp_path / "run").exists() and "epoch" not in res.output


def test_truncated_clip_weights_stop_extraction_in_preflight(tmp_path):
    weights = tmp_path / "ViT-B-16.bin"
    torch.save({"w": torch.zeros(1000)}, weights)
    weights.write_bytes(weights.read_bytes()[:-200])
    make_video(tmp_path / "v" / "a.mp4", 20)
    res = invoke(
        "extract",
        "--videos",
        str(tmp_path / "v"),
        "--out",
        str(tmp_path / "out"),
        "--pretrained",
        str(weights),
        "--clip-model",
        "cplvad-tiny",
    )
    assert res.exit_code == 2
    assert f"clip.pretrained {weights} is truncated or damaged" in one_line_error(res.output)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ containment


def test_a_list_row_climbing_out_of_features_root_is_refused_with_its_line(demo_manifest, tmp_path):
    manifest = copy_demo(demo_manifest, tmp_path / "data")
    data = yaml.safe_load(manifest.read_text())
    train_list = manifest.parent / data["train_list"]
    outside = manifest.parent / "F.npy"  # features_root/../F.npy exists: it must not be loaded
    np.save(outside, np.zeros((4, 512), np.float32))
    lines = train_list.read_text().splitlines()
    lines.insert(3, "/publisher/Fighting/../F.npy,Fighting")
    train_list.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError,
        match=r"demo_train\.csv:4: row '/publisher/Fighting/\.\./F\.npy' is refused.*"
        r"outside features_root",
    ):
        load_dataset(manifest).train
    res = invoke("train", "--dataset", str(manifest), "--stage", "1", "--out", str(tmp_path / "m"), *TINY)
    assert res.exit_code == 2 and "demo_train.csv:4" in one_line_error(res.output)


# ---------------------------------------------------------------------------------------------- names


def test_an_undecodable_file_name_is_extracted_and_round_trips_through_the_list(tmp_path):
    videos = tmp_path / "videos"
    make_video(videos / "Normal" / "plain.mp4", 33, seed=1)
    raw = b'caf\xe9 \xff, "quoted"'
    make_video(videos / "Normal" / "tmp.mp4", 40, seed=2).rename(
        videos / "Normal" / os.fsdecode(raw + b".mp4")
    )
    make_video(videos / "Fighting" / "back\\slash.mp4", 40, seed=3)
    res = invoke(
        "extract",
        "--videos",
        str(videos),
        "--out",
        str(tmp_path / "f"),
        "--clip-model",
        "cplvad-tiny",
        "--workers",
        "0",
        "--device",
        "cpu",
    )
    assert res.exit_code == 1, res.output  # the backslash name alone failed, with its reason
    assert "back\\slash: its name holds a backslash" in res.output
    assert (
        b"Normal/" + raw.replace(b'"', b'""') + b"__0.npy" in (tmp_path / "f" / "features.csv").read_bytes()
    )
    assert (tmp_path / "f" / "Normal" / os.fsdecode(raw + b"__0.npy")).is_file()
    (tmp_path / "ds.yaml").write_text(
        "name: t\nclasses: [Normal, Fighting]\ntrain_list: f/features.csv\ntest_list: f/features.csv\n"
    )
    listed = load_dataset(tmp_path / "ds.yaml").train
    assert sorted(listed.names) == sorted([os.fsdecode(raw), "plain"])
    assert all(p.is_file() for _, _, p in listed.samples())
    manifest = json.loads((tmp_path / "f" / "features.extraction.json").read_text())
    assert manifest["videos"][os.fsdecode(raw)]["status"] == "ok"
    assert manifest["videos"]["back\\slash"]["status"] == "failed"
    again = extract_run(videos, tmp_path / "f")  # resume: the undecodable name is done, not redone
    assert again.skipped == 2 and again.extracted == 0


# ------------------------------------------------------------------------------------------ damaged state


def _interrupt_in_epoch(monkeypatch, epoch: int) -> None:
    calls = {"n": 0}
    original = trainer_mod.batches

    def batches(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == epoch:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "batches", batches)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(model_dir / "model.pt", weights_only=True)


@pytest.fixture(scope="module")
def trained(demo_manifest, tmp_path_factory) -> Path:
    """A finished stage-1 model (tiny settings, a checkpoint after every epoch); copy it before changing it."""
    out = tmp_path_factory.mktemp("trained") / "m"
    train_stage(
        demo_manifest, out, conftest.tiny_config("train.checkpoint_seconds=0"), stage=1, progress=False
    )
    return out


def test_a_damaged_checkpoint_is_set_aside_and_training_finishes(
    demo_manifest, trained, tmp_path, monkeypatch, caplog
):
    cfg = conftest.tiny_config("train.checkpoint_seconds=0")
    with monkeypatch.context() as m:
        _interrupt_in_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            train_stage(demo_manifest, tmp_path / "run", cfg, stage=1, progress=False)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated: a PytorchStreamReader error
    with caplog.at_level(logging.WARNING, logger="cplvad"):
        result = train_stage(demo_manifest, tmp_path / "run", cfg, stage=1, progress=False)
    [aside] = list((tmp_path / "run").glob("checkpoint.pt.damaged-*"))
    assert (
        aside.stat().st_size == 1000
        and aside.name in caplog.text
        and "starts again from epoch 1" in caplog.text
    )
    assert [h["epoch"] for h in result.history] == [1, 2]
    full, redone = _weights(trained), _weights(tmp_path / "run")
    assert all(torch.equal(full[k], redone[k]) for k in full)  # as if never interrupted


def test_a_damaged_finished_model_is_set_aside_and_trained_again(demo_manifest, trained, tmp_path):
    out = tmp_path / "m"
    shutil.copytree(trained, out)
    (out / "model.pt").write_bytes((out / "model.pt").read_bytes()[:-100])
    args = [
        "train",
        "--dataset",
        str(demo_manifest),
        "--stage",
        "1",
        "--out",
        str(out),
        "--quiet",
        *TINY,
        "--set",
        "train.checkpoint_seconds=0",
    ]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "model.pt.damaged-" in res.output and "trained again" in res.output
    before, after = _weights(trained), _weights(out)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert "nothing to do" in invoke(*args).output  # and now it is whole


class _Payload:
    """Unpickling this would run a command; weights_only=True must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_model_pickle_is_not_a_cplvad_model_file(demo_manifest, trained, tmp_path):
    out = tmp_path / "m"
    shutil.copytree(trained, out)
    marker = tmp_path / "pwned"
    torch.save({"x": _Payload(marker)}, out / "model.pt")
    res = invoke(
        "evaluate",
        "--dataset",
        str(demo_manifest),
        "--model",
        str(out),
        "--out",
        str(tmp_path / "m.json"),
        *TINY,
    )
    assert res.exit_code == 2
    line = one_line_error(res.output)
    assert f"{out / 'model.pt'} is not a cplvad model file" in line and "nothing in it was run" in line
    assert not marker.exists()


def test_a_damaged_extraction_manifest_is_set_aside_and_everything_extracted_again(tmp_path):
    make_video(tmp_path / "v" / "a.mp4", 33)
    extract_run(tmp_path / "v", tmp_path / "f")
    (tmp_path / "f" / "features.extraction.json").write_text('{"format": "cplvad-extraction/1", "vid')
    again = extract_run(tmp_path / "v", tmp_path / "f")
    assert again.extracted == 1 and again.skipped == 0
    assert len(list((tmp_path / "f").glob("features.extraction.json.damaged-*"))) == 1
    assert (
        json.loads((tmp_path / "f" / "features.extraction.json").read_text())["videos"]["a"]["status"] == "ok"
    )


# ----------------------------------------------------------------------------------------- extraction resume


def test_a_resumed_extraction_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    """Interrupted after two videos, then resumed: byte-identical files to a run that was never interrupted
    (batches never mix videos, so where a run starts changes nothing)."""
    videos = tmp_path / "videos"
    for i, frames in enumerate([50, 16, 40, 33, 70, 21]):
        make_video(videos / "Normal" / f"v{i}.mp4", frames, seed=i)
    extract_run(videos, tmp_path / "whole")
    finished = {"n": 0}
    original = runner_mod._ExtractionRun.finish

    def finish_then_interrupt(self, video):
        if finished["n"] == 2:
            raise KeyboardInterrupt
        finished["n"] += 1
        return original(self, video)

    with monkeypatch.context() as m:
        m.setattr(runner_mod._ExtractionRun, "finish", finish_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            extract_run(videos, tmp_path / "resumed")
    resumed = extract_run(videos, tmp_path / "resumed")
    assert (resumed.skipped, resumed.extracted) == (2, 4)
    for f in sorted((tmp_path / "whole").rglob("*.npy")):
        assert f.read_bytes() == (tmp_path / "resumed" / f.relative_to(tmp_path / "whole")).read_bytes(), (
            f.name
        )


def test_kfp_submit_to_an_unreachable_host_is_one_line_without_the_password(capsys):
    from pipelines.cli import main

    host = f"http://user:{PASSWORD}@127.0.0.1:{closed_port()}"
    assert main(["submit", "--host", host, "--params", str(conftest.TINY_PARAMS)]) == 2
    captured = capsys.readouterr()
    line = one_line_error(captured.err)
    assert "cannot connect to http://127.0.0.1:" in line and PASSWORD not in captured.out + captured.err
