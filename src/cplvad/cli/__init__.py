"""Command-line interface. Importing a command module registers its commands on ``cli``."""

from cplvad.cli import data, datasets, extract, mlops, predict, stages  # noqa: F401  (registers commands)
from cplvad.cli.main import cli


def main() -> None:
    cli()


__all__ = ["cli", "main"]
