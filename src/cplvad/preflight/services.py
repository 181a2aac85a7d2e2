"""The services a command needs, reached before its long work and with short timeouts.

MLflow: the tracking store is asked for the experiment (created when new) and the experiment gets the tag
``cplvad.preflight`` (the time of the check): reachable, authenticated and writable. MLflow's own HTTP
retries (7 with exponential back-off by default, minutes against a dead server) are lowered for these
calls only (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` / ``_BACKOFF_FACTOR`` / ``_TIMEOUT``; lower values set by
the user are kept), so an unreachable server fails in seconds; the logging at the end of the run keeps the
user's settings. An ``s3://`` artifact location is checked like any S3 output.

Storage (``s3://`` and any other remote location): a source (prefix or list file) must be there, an output
prefix must take a small object, which is deleted again; S3 is reached with short timeouts and two
attempts (``cplvad.storage.location.QUICK_TIMEOUT``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

from cplvad.config import Config
from cplvad.errors import DataError, ServiceError
from cplvad.extras import require
from cplvad.failures import describe
from cplvad.redact import redact
from cplvad.storage.location import filesystem_path, open_location, storage_errors

FAST_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 1,
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": 1,
    "MLFLOW_HTTP_REQUEST_TIMEOUT": 5,
}
"""Upper bounds for the preflight's MLflow requests: at most ~11 s against a server that never answers."""
PREFLIGHT_TAG = "cplvad.preflight"
PROBE_PREFIX = ".cplvad-preflight-"


@contextlib.contextmanager
def fast_mlflow_http() -> Iterator[None]:
    """MLflow's HTTP retries and timeout lowered to ``FAST_HTTP`` inside the block."""
    saved = {name: os.environ.get(name) for name in FAST_HTTP}
    for name, bound in FAST_HTTP.items():
        current = saved[name]
        keep = current is not None and current.strip().isdigit() and int(current) <= bound
        os.environ[name] = current if keep else str(bound)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_tracking(config: Config) -> str:
    """Reach the MLflow tracking store the run will log to, and write to it; the address, masked."""
    mlflow = require("mlflow", "tracking (--track)")
    from cplvad.tracking.runs import setup_mlflow

    with fast_mlflow_http():
        try:
            experiment_id = setup_mlflow(config)
            client = mlflow.MlflowClient()
            client.set_experiment_tag(experiment_id, PREFLIGHT_TAG, datetime.now(timezone.utc).isoformat())
            artifacts = client.get_experiment(experiment_id).artifact_location or ""
        except Exception as exc:  # noqa: BLE001 - any failure of the store is reported in our words
            raise ServiceError(f"preflight: {describe(exc).message}") from exc
    uri = redact(mlflow.get_tracking_uri())
    if artifacts.startswith("s3://"):
        check_writable(artifacts)
    return uri


def check_readable(uri: str) -> None:
    """A remote list file or prefix (``s3://``, any fsspec URL) is there and can be read."""
    fs, path = filesystem_path(uri, quick=True)
    with _reporting("read", uri):
        try:
            fs.info(path)
        except FileNotFoundError as exc:
            if exc.__cause__ is not None:  # the store's own error, e.g. S3's NoSuchBucket
                raise
            raise DataError(
                f"{uri} does not exist (no object, and nothing under that prefix); check the bucket and the prefix"
            ) from None


def check_writable(uri: str) -> None:
    """A remote prefix takes a new object (written, then deleted)."""
    location = open_location(uri, quick=True)
    probe = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    with _reporting("write", uri):
        location.write_bytes(probe, b"")
    with _reporting("delete a test object in", uri):
        location.delete(probe)


@contextlib.contextmanager
def _reporting(action: str, uri: str) -> Iterator[None]:
    """A storage failure as a ServiceError of the preflight (the reason says where to look)."""
    try:
        yield
    except DataError as exc:
        raise ServiceError(f"preflight: {exc}") from None
    except storage_errors() as exc:
        raise ServiceError(f"preflight: cannot {action} {uri}: {describe(exc).message}") from None
