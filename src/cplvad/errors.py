"""User-facing errors: the CLI prints their message (no traceback) and exits with status 2 (cli/boundary.py)."""

from __future__ import annotations


class CplvadError(Exception):
    """A problem with the user's input: the message says which file, what is wrong and what to do."""


class ConfigError(CplvadError):
    """A bad value in params.yaml or a --set override."""


class DataError(CplvadError):
    """A dataset manifest, list, annotation, feature or prediction file that cannot be used."""


class ServiceError(CplvadError):
    """A service a command needs (MLflow tracking server, S3) cannot be reached or refuses the request."""


class ForeignDataError(CplvadError):
    """An output folder or file holds data that cplvad did not write: it is refused, never touched."""


class BusyError(CplvadError):
    """Another cplvad process is writing the output folder (one writer per folder)."""
