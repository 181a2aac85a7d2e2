"""Command-line interface. Importing a command module registers its commands on ``cli``.

The command modules are imported when ``cli`` or ``main`` is first used, not when the package is: the
error boundary (``cplvad.cli.boundary``) is shared with ``python -m pipelines``, which should not pay
for importing torch and every command to print one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click


def _cli_with_commands() -> click.Group:
    from cplvad.cli import (  # noqa: F401  (registers commands)
        data,
        datasets,
        extract,
        feedback,
        mlops,
        monitor,
        predict,
        stages,
    )
    from cplvad.cli.main import cli

    return cli


def main() -> None:
    _cli_with_commands()()


def __getattr__(name: str) -> Any:
    if name == "cli":
        return _cli_with_commands()
    raise AttributeError(f"module 'cplvad.cli' has no attribute {name!r}")


__all__ = ["cli", "main"]
