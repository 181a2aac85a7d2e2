"""What went wrong, in our words: one or two lines for any exception a command can meet.

Our own errors (``CplvadError``) already say which file or setting is wrong and what to do. The errors of
the libraries we call that we can anticipate are described the same way: MLflow and connection errors
(which service, at which address, credentials masked), S3 errors (botocore's, also where they caused the
OSError s3fs raised) and fsspec's timeouts, unreadable PyTorch files, PyAV decoding errors, OS errors on
the user's paths, running out of memory. Anything else is a bug, and says so. The CLI's error boundary
(``cli/boundary.py``) prints these; preflight checks and the storage layer reuse them.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cplvad.errors import CplvadError
from cplvad.redact import redact

EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 2, 3, 130
"""Exit statuses of a failure (the README's table): 2 a usage, configuration, data, storage or service
error; 3 an unexpected error (a bug); 130 interrupted. 1 (some inputs failed) is the commands' own."""
MAX_DETAIL = 300
"""Characters of a library's own message kept in ours (its first line)."""


@dataclass(frozen=True)
class Failure:
    message: str
    exit_code: int


def describe(exc: BaseException) -> Failure:
    """What went wrong, in our words, with the exit status; credentials masked."""
    if isinstance(exc, KeyboardInterrupt):
        return Failure("interrupted; run the same command again to resume where it stopped", EXIT_INTERRUPTED)
    for cause in _chain(exc):
        for rule in _RULES:
            message = rule(cause)
            if message is not None:
                return Failure(redact(message), EXIT_ERROR)
    return Failure(
        redact(f"unexpected {type(exc).__name__}: {_detail(exc)}. This is probably a bug in cplvad"), EXIT_BUG
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what caused it (``raise ... from``, or raised while handling)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def _detail(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def _from(exc: BaseException, package: str) -> bool:
    return any(c.__module__.split(".")[0] == package for c in type(exc).__mro__)


def _tracking_uri() -> str:
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        try:
            return str(mlflow.get_tracking_uri())
        except Exception:  # noqa: BLE001 - only for the message
            pass
    return os.environ.get("MLFLOW_TRACKING_URI", "the configured tracking URI")


def _is_connection_error(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(
        names
        & {
            "ConnectionError",
            "MaxRetryError",
            "NewConnectionError",
            "Timeout",
            "TimeoutError",
            "ConnectTimeout",
            "ReadTimeout",
            "ProtocolError",
        }
    )


def _connection_reason(exc: BaseException) -> str:
    text = str(exc)
    for phrase in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "No route to host",
        "Temporary failure in name resolution",
        "Connection reset",
        "certificate verify failed",
    ):
        if phrase.lower() in text.lower():
            return phrase.lower()
    return "no connection"


def _mlflow(exc: BaseException) -> str | None:
    if not _from(exc, "mlflow"):
        return None
    where = f"the MLflow tracking server at {_tracking_uri()}"
    text = str(exc)
    if any(_is_connection_error(c) for c in _chain(exc)) or "Max retries exceeded" in text:
        return (
            f"cannot reach {where} ({_connection_reason(exc)}); check MLFLOW_TRACKING_URI "
            "(or tracking.tracking_uri) and that the server is up, or run without tracking (--no-track)"
        )
    code = str(getattr(exc, "error_code", ""))
    if code in ("PERMISSION_DENIED", "UNAUTHENTICATED") or "401" in text or "403" in text:
        return (
            f"{where} refused the request ({_detail(exc)}); check MLFLOW_TRACKING_USERNAME / "
            "MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN"
        )
    return f"MLflow ({_tracking_uri()}): {_detail(exc)}"


def _connection(exc: BaseException) -> str | None:
    if not (_from(exc, "requests") or _from(exc, "urllib3")) or not _is_connection_error(exc):
        return None
    request, pool = getattr(exc, "request", None), getattr(exc, "pool", None)
    target = getattr(request, "url", None) or getattr(exc, "url", None) or "a remote service"
    if pool is not None and str(target).startswith("/"):  # urllib3 names the path; the pool the server
        target = f"{getattr(pool, 'scheme', 'http')}://{pool.host}:{pool.port}{target}"
    return f"cannot connect to {target} ({_connection_reason(exc)}); check the address and that the service is up"


S3_LIBRARIES = ("botocore", "boto3", "aiobotocore", "s3fs")


def _s3(exc: BaseException) -> str | None:
    """botocore's errors, raised by boto3 or aiobotocore, or the cause of the OSError that s3fs makes of one
    (``FileNotFoundError`` for NoSuchKey, ``PermissionError`` for 403...): described from the S3 error."""
    found = next((c for c in _chain(exc) if any(_from(c, p) for p in S3_LIBRARIES)), None)
    if found is None:
        return None
    exc, name = found, type(found).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return (
            "S3: no usable AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        )
    if name in (
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
    ):
        return f"S3: {_detail(exc)}; check AWS_ENDPOINT_URL and that the storage service is up"
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    if error:
        operation = getattr(exc, "operation_name", "request")
        return (
            f"S3 {operation} failed: {error.get('Code', '?')} ({error.get('Message', '')}); check the bucket, "
            "the prefix and the credentials (AWS_* variables)"
        )
    return f"S3: {_detail(exc)}; check the bucket, the prefix and the AWS_* variables"


def _storage_timeout(exc: BaseException) -> str | None:
    """fsspec's timeout of a remote filesystem call (its other errors are OSErrors or the library's own)."""
    if not (_from(exc, "fsspec") and "Timeout" in type(exc).__name__):
        return None
    return (
        "a storage request timed out; check the storage address (AWS_ENDPOINT_URL for S3) and that it is up"
    )


def _torch_file(exc: BaseException) -> str | None:
    name = type(exc).__name__
    text = str(exc)
    if name == "UnpicklingError" or "PytorchStreamReader" in text or "weights_only" in text:
        return (
            f"a file could not be read as a PyTorch file of cplvad ({_detail(exc)}); it is truncated, "
            "damaged or not a file cplvad wrote"
        )
    return None


def _video(exc: BaseException) -> str | None:
    if not _from(exc, "av"):
        return None
    filename = getattr(exc, "filename", None)
    return f"{filename or 'a video'}: cannot be decoded ({getattr(exc, 'strerror', None) or _detail(exc)})"


_OS_ADVICE = {
    errno.ENOENT: "check the path",
    errno.EACCES: "check the permissions of the path",
    errno.EPERM: "check the permissions of the path",
    errno.EROFS: "the file system is read-only: choose a writable location",
    errno.ENOSPC: "the disk is full: free some space or choose another location",
    errno.EDQUOT: "the disk quota is exceeded: free some space or choose another location",
    errno.EISDIR: "a folder is given where a file is expected",
    errno.ENOTDIR: "a file is given where a folder is expected",
    errno.EEXIST: "something already exists there: choose another path",
}


def _os(exc: BaseException) -> str | None:
    if not isinstance(exc, OSError) or _from(exc, "av"):
        return None
    if isinstance(exc, ConnectionError | TimeoutError):
        return f"a network connection failed ({exc.strerror or _detail(exc)}); check the service addresses"
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None) or "a file operation"
    advice = _OS_ADVICE.get(exc.errno or 0, "check the path, its permissions and the free space")
    return f"{where}: {exc.strerror or _detail(exc)}; {advice}"


def _memory(exc: BaseException) -> str | None:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        device = "GPU" if type(exc).__name__ == "OutOfMemoryError" else "host"
        return (
            f"out of {device} memory ({_detail(exc)}); lower the batch size (train.batch_size, "
            "extract.batch_size) or use a machine with more memory"
        )
    return None


def _ours(exc: BaseException) -> str | None:
    return str(exc) if isinstance(exc, CplvadError) else None


_RULES: tuple[Callable[[BaseException], str | None], ...] = (
    _ours,
    _mlflow,
    _s3,
    _storage_timeout,
    _connection,
    _torch_file,
    _video,
    _memory,
    _os,
)
