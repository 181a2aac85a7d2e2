"""Command-line interface. Importing a command module registers its commands on ``cli``."""

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


def main() -> None:
    cli()


__all__ = ["cli", "main"]
