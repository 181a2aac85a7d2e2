"""The pre-commit hooks (.pre-commit-config.yaml) pass on the repository and catch what they are for.

Run on a copy of the tracked files in a fresh git repository, with the local hooks only: the actionlint
hook is built from GitHub on first use, which needs the network (CI's workflow job runs actionlint).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    out = tmp_path / "repo"
    for name in filter(None, files.decode().split("\0")):
        src = REPO / name
        if src.is_file():  # a file deleted in the work tree is not copied
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / name)
    (out / ".venv").symlink_to(REPO / ".venv" if (REPO / ".venv").is_dir() else BIN.parent)
    config = yaml.safe_load((out / ".pre-commit-config.yaml").read_text())
    config["repos"] = [r for r in config["repos"] if r["repo"] == "local"]
    (tmp_path / "local-hooks.yaml").write_text(yaml.safe_dump(config))
    subprocess.run(["git", "init", "-q"], cwd=out, check=True)
    subprocess.run(["git", "add", "-A"], cwd=out, check=True)
    return out


def run_hooks(repo: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(repo.parent / "pre-commit-home")}
    config = str(repo.parent / "local-hooks.yaml")
    command = [str(BIN / "pre-commit"), "run", "--all-files", "--config", config]
    return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)


def test_the_repository_passes_its_hooks_and_the_hooks_catch_a_bad_commit(copy):
    clean = run_hooks(copy)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    (copy / "src/cplvad/sloppy.py").write_text("import os\nx = {  'a':1 }   \n")
    (copy / "NOTES.md").write_text("trailing   \nno final newline")
    (copy / "params.yaml").write_text((copy / "params.yaml").read_text() + "broken: [\n")
    subprocess.run(["git", "add", "-A"], cwd=copy, check=True)
    bad = run_hooks(copy)
    assert bad.returncode == 1
    failed = {line.split(".")[0] for line in bad.stdout.splitlines() if line.endswith("Failed")}
    expected = {
        "ruff check",
        "ruff format",
        "YAML parses",
        "files end in one newline",
        "no trailing whitespace",
    }
    assert failed == expected, bad.stdout
    # the fixers fixed in place: the unused import, the format, the whitespace
    assert (copy / "src/cplvad/sloppy.py").read_text() == 'x = {"a": 1}\n'
    assert (copy / "NOTES.md").read_text() == "trailing\nno final newline\n"
