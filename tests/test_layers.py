"""The import contract of docs/architecture.md#layers (``[tool.importlinter]`` in pyproject.toml): kept by
the package, and broken by an import that points up the layers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the contract in ``REPO/pyproject.toml`` against the ``cplvad`` under ``root`` (and
    the repository's ``components`` and ``pipelines``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(root), str(REPO)))}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(REPO / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_package_keeps_its_import_contracts():
    result = lint_imports(REPO / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_import_up_the_layers_breaks_the_contract(tmp_path):
    shutil.copytree(
        REPO / "src" / "cplvad", tmp_path / "cplvad", ignore=shutil.ignore_patterns("__pycache__")
    )
    low = tmp_path / "cplvad" / "storage" / "atomic.py"
    low.write_text(
        low.read_text() + "\nimport cplvad.cli.stages  # planted: storage reaching up to the CLI\n"
    )

    result = lint_imports(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "cplvad.storage is not allowed to import cplvad.cli" in result.stdout
    assert "cplvad.storage.atomic -> cplvad.cli.stages" in result.stdout
