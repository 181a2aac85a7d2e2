"""What a command writes, declared with its parameters: ``OutputFolder`` and ``OutputFile``.

Every command runs inside ``claimed_outputs``: before its body runs, each output it was given is claimed
(``cplvad.storage.ownership``; an ``s3://`` prefix by ``cplvad.storage.prefixes``): a folder holding files
that cplvad did not write, an existing file that cplvad did not write, or a folder another cplvad process
is writing stops the command at once (exit 2), before any work. ``tests/test_no_data_loss.py`` finds the outputs of every command by these types.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from cplvad.storage.location import is_s3
from cplvad.storage.ownership import LOCK_NAME, claim_file, claim_folder
from cplvad.storage.prefixes import claim_prefix


class OutputFolder(click.Path):
    """A folder the command writes (``--out``, ``--work-dir``, ``--plots``, ...); ``s3``: an ``s3://`` prefix
    is accepted too. ``lock_by``: the parameter whose value names a lock of its own (``--shard``: the
    shards of one extraction may write one folder at the same time). ``create=False``: a folder that must
    exist already (``cplvad report OUT``); a missing one is left to the command to refuse."""

    def __init__(self, *, s3: bool = False, lock_by: str | None = None, create: bool = True) -> None:
        super().__init__(file_okay=False)
        self.s3, self.lock_by, self.create = s3, lock_by, create

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if str(value).startswith("s3://"):
            if not self.s3:
                self.fail(f"{value}: an s3:// prefix is not accepted here; give a local folder", param, ctx)
            return value
        return super().convert(value, param, ctx)


class OutputFile(click.Path):
    """A file the command writes (``--out metrics.json``, ``--predictions-out``, ``--mlflow-parent``, ...).
    ``ours``: recognises an existing file of cplvad's by its content (``storage.ownership.claim_file``)."""

    def __init__(self, *, ours: Callable[[Path], bool] | None = None) -> None:
        super().__init__(dir_okay=False)
        self.ours = ours


def declared_outputs(command: click.Command) -> list[click.Parameter]:
    """The parameters of ``command`` that name an output, folders first."""
    params = [p for p in command.params if isinstance(p.type, OutputFolder | OutputFile)]
    return sorted(params, key=lambda p: not isinstance(p.type, OutputFolder))


def _lock_name(param: click.Parameter, values: dict[str, Any]) -> str:
    by = getattr(param.type, "lock_by", None)
    value = values.get(by) if by else None
    return f"{LOCK_NAME}.{by}-{str(value).replace('/', '-of-')}" if value else LOCK_NAME


@contextlib.contextmanager
def claimed_outputs(ctx: click.Context) -> Iterator[None]:
    """Claim every output given to the command of ``ctx`` for as long as it runs."""
    with contextlib.ExitStack() as stack:
        for param in declared_outputs(ctx.command):
            value = ctx.params.get(param.name or "")
            if value is None:
                continue
            what = param.opts[0] if param.param_type_name == "option" else param.human_readable_name
            if isinstance(param.type, OutputFolder) and not param.type.create and not _exists(value):
                continue
            if isinstance(param.type, OutputFolder):
                claim = claim_prefix if is_s3(value) else claim_folder
                stack.enter_context(claim(value, what, lock_name=_lock_name(param, ctx.params)))
            else:
                stack.enter_context(claim_file(value, what, param.type.ours))
        yield


def _exists(location: str) -> bool:
    return is_s3(location) or os.path.exists(location)
