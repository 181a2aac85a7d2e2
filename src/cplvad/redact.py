"""Credentials never reach the screen, a log, a file or MLflow.

``redact(text)`` masks, anywhere in a text: the user info of URLs (``http://user:PASSWORD@host`` ->
``http://user:***@host``), the values of query parameters whose name says they are secret (``token``,
``key``, ``secret``, ``password``, ``signature``, ``credential``...), ``Bearer``/``Basic`` authorisation
values, and the literal values of the credential variables of the environment (``AWS_SECRET_ACCESS_KEY``,
``MLFLOW_TRACKING_PASSWORD``..., and the passwords inside ``MLFLOW_TRACKING_URI`` and the other URL
variables), wherever they show up, e.g. in a library's exception message.

``redacted_output()`` applies it to everything a command lets out: its stdout and stderr (MLflow writes run
URLs straight to stdout), every log record (message, arguments and traceback) of any logger, and warnings.

``strip_credentials(text)`` is the form in which a text is *stored*: in a file cplvad writes (a model's
``config.json``, ``mlflow_parent.json``, ``mlflow_run.json``), in what it uploads (MLflow params, tags,
artifacts, registered models) or compiles (pipeline YAML). URLs lose their user info and their secret query
parameters altogether (``http://bob:PW@host/x?token=T&a=1`` -> ``http://host/x?a=1``), so no masked stub of
a credential is kept either. Credentials reach a run through the environment instead
(``split_credentials`` moves those of a tracking URI there).
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
_URL = re.compile(r"\b(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<rest>[^\s'\"<>]*)")


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


def _mask_literals(text: str) -> str:
    text = _AUTH_HEADER.sub(lambda m: m["head"] + MASK, text)
    for secret in sorted(_environment_secrets(), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact(text: str) -> str:
    """``text`` with every credential masked (see the module docstring)."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user'] + ':' if m['colon'] else ''}{MASK}@", text)
    text = _QUERY.sub(lambda m: m["head"] + MASK, text)
    return _mask_literals(text)


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """``http://bob:p%40ss@host/x?token=T&a=1`` -> (``http://host/x?a=1``, ``bob``, ``p@ss``): the URI without
    user info and secret query parameters, and the (decoded) user name and password of its user info."""
    match = _URL.fullmatch(uri)
    if match is None:
        return uri, None, None
    rest = match["rest"]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    path, hash_, fragment = rest[end:].partition("#")
    path, question, query = path.partition("?")
    parts = query.split("&")
    kept = [p for p in parts if not re.fullmatch(_SECRET_NAME, p.partition("=")[0], re.IGNORECASE)]
    if len(kept) < len(parts):
        query = "&".join(kept)
        question = "?" if query else ""
    bare = f"{match['scheme']}{host}{path}{question}{query}{hash_}{fragment}"
    user, colon, password = userinfo.partition(":")
    return bare, (unquote(user) or None) if at else None, unquote(password) if colon else None


def strip_credentials(text: str) -> str:
    """``text`` as it may be stored (see the module docstring): every URL in it without user info and secret
    query parameters; authorisation values and the environment's credential values, should they appear
    outside a URL, masked."""
    if not text:
        return text
    return _mask_literals(_URL.sub(lambda m: split_credentials(m[0])[0], text))


def has_credentials(text: str) -> bool:
    """Whether ``text`` holds a credential that ``strip_credentials`` would remove."""
    return strip_credentials(text) != text


def strip_credentials_in(value: Any) -> Any:
    """``value`` (JSON-like: mappings, lists, strings) with ``strip_credentials`` applied to every string."""
    if isinstance(value, str):
        return strip_credentials(value)
    if isinstance(value, dict):
        return {k: strip_credentials_in(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strip_credentials_in(v) for v in value]
    return value


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
