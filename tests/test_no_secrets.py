"""No credential in any file cplvad writes, logs, uploads or compiles.

One secret value is given in every way a user can (the tracking URI's password in the environment and in
the params, ``MLFLOW_TRACKING_PASSWORD``, the AWS keys, the Kubeflow Pipelines token); a tracked run against
a real ``mlflow server``, a prediction with its review page and a pipeline compilation later, the value is
in no file anywhere: outputs, the server's database and artifacts, the compiled YAML, the commands' output.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import services
from conftest import TINY_PARAMS

import cplvad
from cplvad.config import load_config
from cplvad.errors import ConfigError
from cplvad.redact import has_credentials, split_credentials, strip_credentials
from cplvad.tracking.runs import credentials_to_environment

USER = "bob"
SECRET = "Pw-7f3k!x9#Qz/S3cr3t"
"""``!``, ``#`` and ``/`` make its URL-encoded form differ from the value itself."""
CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "KF_PIPELINES_TOKEN",
)


def with_password(url: str) -> str:
    return url.replace("://", f"://{USER}:{quote(SECRET, safe='')}@", 1)


def base64_forms(value: bytes) -> set[str]:
    """The base64 characters that encode ``value`` wherever it starts in an encoded text (three alignments),
    in the standard and the URL-safe alphabet."""
    forms = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + value).decode()
        first, end = -(-8 * shift // 6), (8 * (shift + len(value)) - 6) // 6 + 1  # characters fully inside
        forms |= {encoded[first:end], encoded[first:end].replace("+", "-").replace("/", "_")}
    return forms


NEEDLES = {
    SECRET,
    quote(SECRET, safe=""),
    quote(SECRET),
    quote_plus(SECRET),
    *base64_forms(SECRET.encode()),
    *base64_forms(f"{USER}:{SECRET}".encode()),  # a Basic authorisation header
}


def files_holding_the_secret(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            found += [f"{path}: {needle!r}" for needle in NEEDLES if needle.encode() in data]
    return found


def test_the_search_finds_the_secret_in_each_form(tmp_path):
    for i, text in enumerate(
        [
            f"uri: {with_password('http://h')}",
            "Authorization: Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode(),
            "x" + base64.b64encode(f"xy{SECRET}!".encode()).decode(),
        ]
    ):
        (tmp_path / f"{i}.txt").write_text(text)
    assert len({line.split(":")[0] for line in files_holding_the_secret(tmp_path)}) == 3


def test_stored_forms_hold_no_credential(monkeypatch):
    url = "http://bob:p%40ss@mlflow.example:5000/api?token=T&x=1#top"
    assert split_credentials(url) == ("http://mlflow.example:5000/api?x=1#top", "bob", "p@ss")
    assert strip_credentials(f"see {url} and s3://b/k?X-Amz-Signature=abc") == (
        "see http://mlflow.example:5000/api?x=1#top and s3://b/k"
    )
    for plain in ("sqlite:///mlflow.db", "s3://bucket/features", "/data/x?y", "http://h/x?"):
        assert strip_credentials(plain) == plain and not has_credentials(plain)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert strip_credentials(f"key {SECRET}") == "key ***"  # a credential's value outside a URL

    config = load_config(TINY_PARAMS, [f"tracking.tracking_uri={with_password('http://h:5000')}"])
    assert config.to_dict()["tracking"]["tracking_uri"] == "http://h:5000"  # what files and uploads get
    assert config.flat()["tracking.tracking_uri"] == "http://h:5000"
    assert config.to_dict(keep_credentials=True)["tracking"]["tracking_uri"] == with_password("http://h:5000")


def test_a_tracking_uri_hands_its_credentials_to_the_environment(monkeypatch):
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert credentials_to_environment(with_password("http://h:5000")) == "http://h:5000"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == USER and os.environ["MLFLOW_TRACKING_PASSWORD"] == SECRET
    assert credentials_to_environment("sqlite:///mlflow.db") == "sqlite:///mlflow.db"


def test_a_pipeline_with_a_credential_in_a_uri_is_refused(monkeypatch):
    from pipelines import cli

    refused = cli.build_parser().parse_args(
        ["compile", "--set", f"tracking.tracking_uri={with_password('http://mlflow:5000')}"]
    )
    with pytest.raises(ConfigError) as err:
        cli._params(refused)
    message = str(err.value)
    assert "params.tracking.tracking_uri holds a credential" in message and SECRET not in message
    assert "'http://mlflow:5000'" in message and "kubectl create secret generic cplvad-credentials" in message
    assert "MLFLOW_TRACKING_PASSWORD" in message and "--secret-name" in message

    submit = cli.build_parser().parse_args(
        ["submit", "--tracking-uri", with_password("http://mlflow:5000"), "--host", "http://127.0.0.1:1"]
    )
    with pytest.raises(ConfigError, match="--tracking-uri holds a credential"):
        cli._arguments(submit, "training")


def _run(
    command: list[str], env: dict[str, str], cwd: Path, logs: Path, name: str
) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, timeout=600)
    (logs / f"{name}.out").write_bytes(done.stdout)
    (logs / f"{name}.err").write_bytes(done.stderr)
    return done


@pytest.mark.slow
def test_a_secret_given_every_way_is_in_no_file_written(mlflow_service, demo_manifest, tmp_path):
    server = mlflow_service.url
    work, logs, home, tmp = (tmp_path / d for d in ("work", "logs", "home", "tmp"))
    for folder in (work, logs, home, tmp):
        folder.mkdir()
    names = f"no-secrets-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "KF_PIPELINES_"))}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(
                [str(Path(cplvad.__file__).parents[1]), str(TINY_PARAMS.parents[1])]
            ),
            "HOME": str(home),  # anything a library keeps in the home folder is searched too
            "TMPDIR": str(tmp),  # and in temporary files (the model downloaded from the registry)
            "MLFLOW_TRACKING_URI": with_password(server),
            "MLFLOW_TRACKING_PASSWORD": SECRET,
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID0001",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_SESSION_TOKEN": SECRET,
            "KF_PIPELINES_TOKEN": SECRET,
        }
    )
    cplvad_cmd = [sys.executable, "-c", "from cplvad.cli import main; main()"]
    tiny = ["--params", str(TINY_PARAMS), "--set", "train.device=cpu"]

    run = _run(
        [
            *cplvad_cmd,
            "run",
            "--dataset",
            str(demo_manifest),
            "--out",
            "run",
            "--track",
            "--quiet",
            *tiny,
            "--set",
            f"tracking.tracking_uri={with_password(server)}",
            "--set",
            f"tracking.experiment={names}",
            "--set",
            f"tracking.registered_model={names}",
        ],
        env,
        work,
        logs,
        "run",
    )
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    inputs = sorted((demo_manifest.parent / "features").rglob("*.npy"))[:2]
    predict = _run(
        [
            *cplvad_cmd,
            "predict",
            "--model",
            f"models:/{names}@candidate",
            "--out",
            "predictions",
            "--report",
            "--plot",
            *map(str, inputs),
        ],
        env,
        work,
        logs,
        "predict",
    )
    assert predict.returncode == 0, predict.stderr.decode()[-3000:]

    image = "registry.example.com/team/cplvad@sha256:" + "ab" * 32
    pipelines_cmd = [sys.executable, "-m", "pipelines", "compile", "--pipeline", "training", "--image", image]
    refused = _run(
        [*pipelines_cmd, "--out", "refused", "--set", f"tracking.tracking_uri={with_password(server)}"],
        env,
        work,
        logs,
        "compile-refused",
    )
    assert refused.returncode == 2 and b"kubectl create secret generic" in refused.stderr, refused.stderr
    assert not (work / "refused").exists()
    compiled = _run(
        [*pipelines_cmd, "--out", "yaml", "--set", f"tracking.tracking_uri={server}"],
        env,
        work,
        logs,
        "compile",
    )
    assert compiled.returncode == 0, compiled.stderr.decode()[-3000:]
    (tmp_path / "database.sql").write_bytes(services.dump_database(mlflow_service.database))

    # what was searched holds what this test made: the records, the uploads, the versions, the YAML
    assert f'"tracking_uri": "{server}"' in (work / "run" / "mlflow_parent.json").read_text()
    assert (work / "run" / "stage2" / "config.json").is_file() and (
        work / "predictions" / "index.html"
    ).is_file()
    assert names.encode() in (tmp_path / "database.sql").read_bytes()
    uploaded = list((mlflow_service.root / "artifacts").rglob("config.json"))
    assert len(uploaded) >= 3  # both stages' runs and the registered model
    assert server.encode() in (work / "yaml" / "training.yaml").read_bytes()
    assert files_holding_the_secret(tmp_path, mlflow_service.root) == []
