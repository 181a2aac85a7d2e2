"""The services a command needs, reached before its long work and with short timeouts.

MLflow: the tracking store is asked for the experiment (created when new) and the experiment gets the tag
``cplvad.preflight`` (the time of the check): reachable, authenticated and writable. MLflow's own HTTP
retries (7 with exponential back-off by default, minutes against a dead server) are lowered for these
calls only (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` / ``_BACKOFF_FACTOR`` / ``_TIMEOUT``; lower values set by
the user are kept), so an unreachable server fails in seconds; the logging at the end of the run keeps the
user's settings. An ``s3://`` artifact location is checked like any S3 output.

S3: a source prefix must list (or a list file be readable), an output prefix must take a small object,
which is deleted again; with a client that gives up after ``S3_TIMEOUT`` seconds and two attempts.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from functools import cache
from typing import Any

from cplvad.config import Config
from cplvad.errors import ServiceError
from cplvad.extras import require
from cplvad.failures import describe
from cplvad.redact import redact

FAST_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 1,
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": 1,
    "MLFLOW_HTTP_REQUEST_TIMEOUT": 5,
}
"""Upper bounds for the preflight's MLflow requests: at most ~11 s against a server that never answers."""
PREFLIGHT_TAG = "cplvad.preflight"
S3_TIMEOUT = 5
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
        check_s3_writable(artifacts)
    return uri


@cache
def _s3_client() -> Any:
    boto3 = require("boto3", "reading or writing s3:// paths")
    from botocore.config import Config as BotoConfig

    retries = {"total_max_attempts": 2, "mode": "standard"}
    return boto3.client(
        "s3", config=BotoConfig(connect_timeout=S3_TIMEOUT, read_timeout=S3_TIMEOUT, retries=retries)
    )


def _s3_call(action: str, uri: str, call: Any, **kwargs: Any) -> Any:
    from cplvad.extract.storage import s3_error, s3_exceptions

    try:
        return call(**kwargs)
    except s3_exceptions() as exc:
        raise ServiceError(
            f"preflight: {s3_error(action, uri, exc)}; check the bucket, the prefix and the "
            "AWS_* variables (AWS_ENDPOINT_URL for an S3-compatible server)"
        ) from None


def check_s3_readable(uri: str) -> None:
    """An ``s3://`` list file can be read, or an ``s3://`` prefix listed."""
    from cplvad.extract.storage import LIST_SUFFIXES, split_s3

    bucket, key = split_s3(uri)
    client = _s3_client()
    if key.lower().endswith(LIST_SUFFIXES):
        _s3_call("read", uri, client.head_object, Bucket=bucket, Key=key)
    else:
        _s3_call("list", uri, client.list_objects_v2, Bucket=bucket, Prefix=key, MaxKeys=1)


def check_s3_writable(uri: str) -> None:
    """An ``s3://`` prefix takes a new object (written, then deleted)."""
    from cplvad.extract.storage import split_s3

    bucket, prefix = split_s3(uri)
    key = f"{prefix.strip('/')}/{PROBE_PREFIX}{uuid.uuid4().hex}".lstrip("/")
    client = _s3_client()
    _s3_call("write", uri, client.put_object, Bucket=bucket, Key=key, Body=b"")
    _s3_call("delete a test object in", uri, client.delete_object, Bucket=bucket, Key=key)
