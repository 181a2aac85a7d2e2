"""``cplvad monitor``: each source's daily score histogram against the model's calibration distribution.

Exit status: 0 no source drifted, 1 a source drifted (the table says which; the webhook is told), 2 a usage,
configuration or data error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cplvad.cli.main import cli, config_flag, config_options, console
from cplvad.cli.outputs import OutputFile, OutputFolder
from cplvad.config import Config


@cli.command("monitor")
@click.argument("out", type=OutputFolder(s3=True, create=False))
@click.option(
    "--model",
    default=None,
    help="Compare with this model's calibration (default: the model that scored each day).",
)
@config_flag(
    "--days", key="monitor.days", type=click.IntRange(1), help="Most recent days per source (monitor.days)."
)
@click.option("--webhook", default=None, metavar="URL", help="POST a JSON message for every drifted source.")
@click.option(
    "--plot",
    "plot_path",
    type=OutputFile(),
    default=None,
    help="Where to draw the plot (default: OUT/monitor/drift.png for a local OUT).",
)
@config_options
def monitor_cmd(
    out: str, model: str | None, webhook: str | None, plot_path: str | None, config: Config
) -> None:
    """Compare the daily score histograms that scoring jobs keep in OUT/monitor/ (cplvad predict, --live,
    the scoring pipeline) with the distribution the threshold was calibrated on (PSI against
    monitor.psi_threshold, KS beside it); print a table, draw a plot, post drifted sources to --webhook."""
    from cplvad.errors import DataError
    from cplvad.monitor.drift import References, alerts, compare, drift_table, plot_drift
    from cplvad.monitor.histograms import FOLDER, read_histograms
    from cplvad.predict.webhook import Webhook
    from cplvad.storage.location import is_s3, open_location
    from cplvad.tracking.registry import resolve_model

    if not is_s3(out) and not Path(out).is_dir():
        raise DataError(f"{out} is not a folder; give the --out folder of `cplvad predict`")
    sink = open_location(out)
    histograms = read_histograms(sink)
    if not histograms:
        raise DataError(f"{out} holds no score histograms ({FOLDER}/): score footage into it first")
    reference = References(lambda uri: resolve_model(uri, config), model)
    settings = config.monitor
    rows = compare(histograms, reference, settings)
    console.print(drift_table(rows, settings.psi_threshold))
    if plot_path is None and sink.local is not None:
        plot_path = str(sink.local / FOLDER / "drift.png")
    if plot_path is not None:
        console.print(
            f"plot: {plot_drift(rows, reference, settings.psi_threshold, Path(plot_path))}", highlight=False
        )
    messages = alerts(rows, settings.psi_threshold)
    if webhook and messages:
        hook = Webhook(
            webhook,
            lambda text: console.print(text, highlight=False),
            timeout=config.predict.webhook_timeout,
            retries=config.predict.webhook_retries,
        )
        for message in messages:
            hook.post(message)
        stats = hook.close(wait=config.predict.webhook_timeout * (config.predict.webhook_retries + 1) + 5)
        console.print(
            f"webhook {hook.display}: {stats.delivered} delivered, {stats.failed} failed, {stats.dropped} dropped",
            highlight=False,
        )
    if messages:
        drifted = ", ".join(m["source"] for m in messages)
        console.print(f"[bold red]drift[/] in {len(messages)} source(s): {drifted}", highlight=False)
        sys.exit(1)
    console.print("no source drifted", highlight=False)
