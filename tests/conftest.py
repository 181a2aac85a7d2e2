"""Shared fixtures: the demo dataset (generated once per session), the real benchmark metadata, and a
local S3 server (moto) for storage tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock
from glitch import train_glitch_model

from cplvad.config import DemoConfig
from cplvad.data import load_dataset
from cplvad.data.demo import write_demo_dataset

if "PYTEST_XDIST_WORKER" in os.environ:
    # several workers share few cores: two torch threads each make tiny ops many times slower
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # and for the commands the tests run in subprocesses

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(os.environ.get("CPLVAD_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    if not BENCHMARKS.is_dir():
        pytest.skip(f"benchmark metadata not found at {BENCHMARKS} (set CPLVAD_BENCHMARKS to its folder)")
    return BENCHMARKS


@pytest.fixture(scope="session")
def demo_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo dataset shared by the whole session (read-only: copy it before changing files)."""
    cfg = DemoConfig(seed=7, train_normal=6, train_abnormal=6, test_normal=4, test_abnormal=4)
    return write_demo_dataset(tmp_path_factory.mktemp("demo") / "demo", cfg)


@pytest.fixture(scope="session")
def demo_dataset(demo_manifest: Path):
    return load_dataset(demo_manifest)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The glitch model (tests/glitch.py), trained once per session (under pytest-xdist, once for all workers)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return train_glitch_model(tmp_path_factory.mktemp("glitch"))
    root = tmp_path_factory.getbasetemp().parent / "predict-glitch"
    with FileLock(f"{root}.lock"):
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)
            train_glitch_model(root)
            (root / "done").touch()
    return root / "model"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A local S3 server (moto_server from the venv) on 127.0.0.1, started once and stopped at the end."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        pytest.skip(f"{exe} not found; install the dev extra (moto[server])")
    port = _free_port()
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start on {url} (exit code {proc.poll()})")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Point every boto3 client (and child process) of this test at the moto server; return its URL."""
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return moto_endpoint
