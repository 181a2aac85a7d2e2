"""The error boundary of every command: a failure is one or two lines, never a traceback (unless asked).

``report`` prints ``cplvad.failures.describe``'s line (credentials masked) and returns the exit status:
0 success; 1 some inputs failed and the others were done (``extract``, ``extract-merge``, ``predict``), or
the data cannot be used for training (``datasets check``); 2 a usage, configuration, data, storage or
service error; 3 an unexpected error (a bug); 130 interrupted.
``--debug`` (or ``CPLVAD_DEBUG=1``) prints the traceback, masked too, before the line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator

from cplvad.failures import EXIT_BUG, describe
from cplvad.redact import redact

DEBUG_VARIABLE = "CPLVAD_DEBUG"


def debug_requested(flag: bool = False) -> bool:
    return flag or os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def library_warnings() -> Iterator[None]:
    """Show the warnings the library logs (logger ``cplvad``) as ``warning: ...`` lines on stderr."""
    logger = logging.getLogger("cplvad")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def report(exc: BaseException, *, debug: bool, write: Callable[[str], None]) -> int:
    """Write the failure of ``exc`` (after its traceback, with ``debug``); return the exit status."""
    failure = describe(exc)
    if debug:
        write(redact("".join(traceback.format_exception(exc))).rstrip("\n"))
    message = failure.message
    if failure.exit_code == EXIT_BUG and not debug:
        message += f"; re-run with --debug (or {DEBUG_VARIABLE}=1) for the traceback and report it"
    write(f"error: {message}")
    return failure.exit_code
