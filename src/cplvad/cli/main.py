"""The ``cplvad`` command group; subcommands live in sibling modules and register themselves on ``cli``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from cplvad import __version__
from cplvad.cli.boundary import DEBUG_VARIABLE, debug_requested, library_warnings, report
from cplvad.config import Config, config_from_dict, load_config
from cplvad.redact import redacted_output

console = Console(stderr=True)


class _Group(click.Group):
    """Runs every command inside the error boundary (``cli/boundary.py``) with credentials masked in all
    its output; ``--debug`` / ``CPLVAD_DEBUG=1`` adds the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = debug_requested(bool(ctx.params.get("debug")))
        with redacted_output(), library_warnings():
            try:
                return super().invoke(ctx)
            except (Exception, KeyboardInterrupt) as exc:
                if isinstance(exc, click.exceptions.Exit | click.ClickException | click.Abort):
                    raise
                status = report(exc, debug=debug, write=lambda text: console.print(
                    text, style="bold red" if text.startswith("error:") else None, markup=False, highlight=False,
                    soft_wrap=True))
        sys.exit(status)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="cplvad")
@click.option("--debug", is_flag=True, help=f"Show the traceback of a failure (also {DEBUG_VARIABLE}=1).")
def cli(debug: bool) -> None:
    """CPL-VAD: weakly supervised video anomaly detection with cross pseudo labels.

    Exit status: 0 done; 1 some inputs failed, the others were done (extract, extract-merge, predict);
    2 a usage, configuration, data, storage or service error; 3 an unexpected error (a bug); 130 interrupted.
    """


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--params FILE`` and repeatable ``--set section.key=value``; pass a loaded ``config``."""

    @click.option(
        "--params",
        "params_file",
        type=click.Path(dir_okay=False),
        default=None,
        help="Parameters file (default: ./params.yaml when present, else built-in defaults).",
    )
    @click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="SECTION.KEY=VALUE",
        help="Override one parameter, e.g. --set train.epochs=5 (repeatable).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, params_file: str | None, overrides: tuple[str, ...], **kwargs: Any) -> Any:
        config: Config = load_config(params_file, overrides)
        return func(*args, config=config, **kwargs)

    return wrapper


def with_flags(config: Config, flags: dict[str, dict[str, Any]]) -> Config:
    """Command-line flags override the params file and ``--set`` (validated like them)."""
    data = config.to_dict()
    given = []
    for section, values in flags.items():
        for key, value in values.items():
            if value is not None:
                data[section][key] = value
                given.append(f"{section}.{key}={value}")
    return config_from_dict(data, "the command-line options " + " ".join(given)) if given else config
