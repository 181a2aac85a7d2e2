"""The ``cplvad`` command group; subcommands live in sibling modules and register themselves on ``cli``."""

from __future__ import annotations

import dataclasses
import functools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from cplvad import __version__
from cplvad.cli.boundary import DEBUG_VARIABLE, debug_requested, library_warnings, report
from cplvad.cli.outputs import OutputFile, claimed_outputs
from cplvad.config import DEMO_DATASET, Config, config_from_dict, dataset_kind, load_config
from cplvad.errors import ConfigError, CplvadError
from cplvad.redact import redacted_output

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


class _Command(click.Command):
    """A command whose declared outputs are claimed before its body runs (``cli/outputs.py``)."""

    def invoke(self, ctx: click.Context) -> Any:
        with claimed_outputs(ctx):
            return super().invoke(ctx)


class _Subgroup(click.Group):
    """A group of commands below ``cli`` (``datasets``): its commands claim their outputs too."""

    command_class = _Command


class _Group(click.Group):
    """Runs every command inside the error boundary (``cli/boundary.py``) with credentials masked in all
    its output; ``--debug`` / ``CPLVAD_DEBUG=1`` adds the traceback. Its commands claim their outputs
    before they run (``cli/outputs.py``)."""

    command_class = _Command
    group_class = _Subgroup

    def invoke(self, ctx: click.Context) -> Any:
        debug = debug_requested(bool(ctx.params.get("debug")))
        with redacted_output(), library_warnings():
            try:
                return super().invoke(ctx)
            except (Exception, KeyboardInterrupt) as exc:
                if isinstance(exc, click.exceptions.Exit | click.ClickException | click.Abort):
                    raise
                status = report(
                    exc,
                    debug=debug,
                    write=lambda text: console.print(
                        text,
                        style="bold red" if text.startswith("error:") else None,
                        markup=False,
                        highlight=False,
                        soft_wrap=True,
                    ),
                )
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
    """Add ``--params FILE`` and repeatable ``--set section.key=value``; pass a loaded ``config``, with the
    command's ``config_flag`` options applied over both."""

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
        dataset = kwargs.get("dataset_path")
        if dataset and dataset_kind(dataset) == "benchmark":  # --dataset NAME: data.dataset (open_dataset)
            overrides = (f"data.dataset={dataset}", *overrides)
        flags = [p for p in click.get_current_context().command.params if isinstance(p, ConfigFlag)]
        config = _with_flags(load_config(params_file, overrides), {p.key: kwargs.pop(p.name) for p in flags})
        return func(*args, config=config, **kwargs)

    return wrapper


class ConfigFlag(click.Option):
    """A flag that stands for one config key (``key``: ``section.name``): ``config_options`` applies it over
    the params file and ``--set``; the command never sees it."""

    def __init__(self, *args: Any, key: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key = key


def config_flag(*decls: str, key: str, **attrs: Any) -> Callable[[F], F]:
    """``@config_flag("--workers", key="extract.workers", type=int, help=...)``: a ``ConfigFlag``, unset by
    default (the config decides)."""
    return click.option(*decls, cls=ConfigFlag, key=key, default=None, **attrs)


def encoding_flags(func: F) -> F:
    """``--device``, ``--workers``, ``--batch-size``: how a command that encodes video runs CLIP (``extract``
    keys)."""
    flags = [
        config_flag(
            "--device",
            key="extract.device",
            type=click.Choice(["auto", "cpu", "cuda"]),
            help="Device for CLIP, and for the model when scoring (extract.device; auto = cuda if available).",
        ),
        config_flag(
            "--workers",
            key="extract.workers",
            type=int,
            help="Decode worker processes, 0 = decode in the main process (extract.workers).",
        ),
        config_flag(
            "--batch-size",
            key="extract.batch_size",
            type=int,
            help="Images per CLIP forward pass (extract.batch_size).",
        ),
    ]
    for flag in reversed(flags):
        func = flag(func)
    return func


def options_object(cls: type[Any], name: str = "options") -> Callable[[F], F]:
    """Hand the command its parameters named like the fields of ``cls`` (a frozen dataclass) as one ``cls``
    in ``name``: the options object it passes to the library as it is. Place it below the decorators that
    add parameters it packs (``parent_run_option``)."""
    fields = {f.name for f in dataclasses.fields(cls)}

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {k: kwargs.pop(k) for k in fields & kwargs.keys()}
            return func(*args, **kwargs, **{name: cls(**values)})

        return wrapper  # type: ignore[return-value]

    return decorate


def seeds_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--seeds 0,1,2``: run once per seed and report every metric per seed and as mean ± std."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
        from cplvad.workflow.seeds import parse_seeds

        try:
            return parse_seeds(value) if value is not None else None
        except CplvadError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(
        "--seeds",
        default=None,
        metavar="S1,S2,...",
        callback=parse,
        help="Run once per seed (in OUT/seed-<s>) and report each metric per seed and as mean ± std.",
    )(func)


def _with_flags(config: Config, flags: dict[str, Any]) -> Config:
    """Command-line flags (``section.key`` -> value; None: not given) over the params file and ``--set``,
    validated like them."""
    data = config.to_dict(keep_credentials=True)
    given = []
    for key, value in flags.items():
        if value is not None:
            section, _, name = key.partition(".")
            data[section][name] = value
            given.append(f"{key}={value}")
    return config_from_dict(data, "the command-line options " + " ".join(given)) if given else config


def parent_run_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--mlflow-parent FILE``; pass ``parent_run``: the MLflow run this stage logs into as it runs
    (None: not tracked). Place it below ``config_options``: it needs the loaded ``config``."""

    @click.option(
        "--mlflow-parent",
        "mlflow_parent",
        type=OutputFile(),
        default=None,
        metavar="FILE",
        help="Log this stage while it runs, as a nested MLflow run of the pipeline run recorded in FILE (one "
        "is opened and recorded when FILE is missing or names a closed run). $CPLVAD_MLFLOW_PARENT_RUN_ID or "
        "$CPLVAD_PIPELINE_RUN, when set, name the pipeline run instead.",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, mlflow_parent: str | None, config: Config, **kwargs: Any) -> Any:
        from cplvad.tracking.pipeline_run import find_parent

        return func(*args, parent_run=find_parent(config, record=mlflow_parent), config=config, **kwargs)

    return wrapper


def open_dataset(spec: str, config: Config) -> tuple[str, Config]:
    """``--dataset``: a manifest path as it is, or a built-in benchmark resolved for this command.

    A built-in name is the command's ``data.dataset`` (``config_options`` sets it before validating the
    section); the rest of the ``data`` section locates its features. Its manifest is written to a folder
    that lives as long as the command.
    """
    from cplvad.data.selection import resolve_dataset

    if spec == DEMO_DATASET:
        raise ConfigError(
            "--dataset demo: the demo is generated and extracted by the pipeline (`make demo`, "
            "`dvc repro`); then use --dataset data/dataset/dataset.yaml"
        )
    if dataset_kind(spec) != "benchmark":
        config_from_dict(
            {"data": {"dataset": spec}}, f"--dataset {spec}"
        )  # a name that is no dataset: say so
        return spec, config
    if config.data.dataset != spec:
        config = config_from_dict(
            {**config.to_dict(keep_credentials=True), "data": {**config.data.model_dump(), "dataset": spec}},
            f"--dataset {spec} with the data section",
        )
    return str(resolve_dataset(config.data, command_tempdir(f"cplvad-{spec}-") / spec)), config


def command_tempdir(prefix: str) -> Path:
    """A temporary folder removed when the running command ends."""
    return Path(click.get_current_context().with_resource(tempfile.TemporaryDirectory(prefix=prefix)))


def dataset_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--dataset`` (a manifest or a built-in name); place below ``config_options``: it needs the config."""

    @click.option(
        "--dataset",
        "dataset_path",
        required=True,
        metavar="D.yaml|NAME",
        help="Dataset manifest, or a built-in benchmark (ucf-crime, xd-violence, ...: `cplvad datasets` "
        "lists them) located by data.features_root.",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, dataset_path: str, config: Config, **kwargs: Any) -> Any:
        dataset_path, config = open_dataset(dataset_path, config)
        return func(*args, dataset_path=dataset_path, config=config, **kwargs)

    return wrapper
