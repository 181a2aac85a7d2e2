"""Credentials never reach the screen, a log or MLflow.

``redact(text)`` masks, anywhere in a text: the user info of URLs (``http://user:PASSWORD@host`` ->
``http://user:***@host``), the values of query parameters whose name says they are secret (``token``,
``key``, ``secret``, ``password``, ``signature``, ``credential``...), ``Bearer``/``Basic`` authorisation
values, and the literal values of the credential variables of the environment (``AWS_SECRET_ACCESS_KEY``,
``MLFLOW_TRACKING_PASSWORD``..., and the passwords inside ``MLFLOW_TRACKING_URI`` and the other URL
variables), wherever they show up, e.g. in a library's exception message.

``redacted_output()`` applies it to everything a command lets out: its stdout and stderr (MLflow writes run
URLs straight to stdout), every log record (message, arguments and traceback) of any logger, and warnings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterator
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

MASK = "***"
SECRET_VARIABLES = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "KF_PIPELINES_TOKEN",
    "KF_PIPELINES_COOKIES",
    "DATABRICKS_TOKEN",
    "HF_TOKEN",
)
URL_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "DVC_REMOTE_URL",
    "KF_PIPELINES_ENDPOINT",
)
MIN_SECRET_LENGTH = 4
"""Shorter values are not masked as literals (masking every "ab" would garble the text); the URL and query
rules still mask them where they appear in a URL."""

_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s/@:?#'\"<>]*)(?P<colon>:?)[^\s/@?#'\"<>]*@"
)
_SECRET_NAME = r"[\w.\-]*(?:token|key|secret|passw|pwd|signature|sig|credential|auth|session|cookie)[\w.\-]*"
_QUERY = re.compile(rf"(?P<head>[?&;]{_SECRET_NAME}=)[^&\s'\"#<>]+", re.IGNORECASE)
_AUTH_HEADER = re.compile(r"\b(?P<head>(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=\-]{8,}")


def _environment_secrets() -> set[str]:
    secrets = {os.environ.get(name, "") for name in SECRET_VARIABLES}
    for name in URL_VARIABLES:
        with contextlib.suppress(ValueError):
            parts = urlsplit(os.environ.get(name, ""))
            secrets.add(parts.password or "")
            for item in parts.query.split("&"):
                key, _, value = item.partition("=")
                if re.fullmatch(_SECRET_NAME, key, re.IGNORECASE):
                    secrets.add(value)
    return {v for s in secrets if len(s) >= MIN_SECRET_LENGTH for v in (s, unquote(s))}


def redact(text: str) -> str:
    """``text`` with every credential masked (see the module docstring)."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user'] + ':' if m['colon'] else ''}{MASK}@", text)
    text = _QUERY.sub(lambda m: m["head"] + MASK, text)
    text = _AUTH_HEADER.sub(lambda m: m["head"] + MASK, text)
    for secret in sorted(_environment_secrets(), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class RedactingStream:
    """A text stream that masks credentials in everything written to it; the rest is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Format the record's message and traceback now, masked, so no handler formats the raw ones."""
    with contextlib.suppress(Exception):  # a malformed record is the logging module's business
        record.msg, record.args = redact(record.getMessage()), None
    if record.exc_info:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


@contextlib.contextmanager
def redacted_output() -> Iterator[None]:
    """Mask credentials in stdout, stderr, every log record and warnings until the block ends."""
    streams = sys.stdout, sys.stderr
    factory = logging.getLogRecordFactory()
    formatwarning = warnings.formatwarning
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    logging.setLogRecordFactory(lambda *args, **kwargs: redact_record(factory(*args, **kwargs)))
    warnings.formatwarning = lambda *args, **kwargs: redact(formatwarning(*args, **kwargs))
    try:
        yield
    finally:
        sys.stdout, sys.stderr = streams
        logging.setLogRecordFactory(factory)
        warnings.formatwarning = formatwarning
