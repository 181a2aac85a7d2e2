"""Shared fixtures: the demo dataset (generated once per session) and the real benchmark metadata."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cplvad.config import DemoConfig
from cplvad.data import load_dataset
from cplvad.data.demo import write_demo_dataset

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
