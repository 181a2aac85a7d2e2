"""``cplvad predict``: score videos, feature files or live sources with a trained model; ``cplvad report``: the
review page of a folder of predictions.

Exit status: 0 when every input was scored, 1 when any input failed (the others are still scored and
written; the reasons are printed; a live source fails when it never delivered a frame), 2 for a usage,
configuration or model error (nothing is scored).
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path

import click

from cplvad import preflight
from cplvad.cli.main import cli, config_flag, config_options, console, encoding_flags, options_object
from cplvad.cli.outputs import OutputFolder
from cplvad.config import Config
from cplvad.predict.run import PredictOptions


def _event_text(e) -> str:  # noqa: ANN001
    where = (
        f"{e.start_s:.1f}-{e.end_s:.1f} s"
        if e.start_s is not None
        else f"frames {e.start_frame}-{e.end_frame}"
    )
    return f"{e.label} {where} (score {e.score:.2f})"


def _print_line(line: dict) -> None:
    """One JSON line on stdout, flushed: a consumer reads each as it happens."""
    click.echo(json.dumps(line))
    sys.stdout.flush()


def _print_event(result, event) -> None:  # noqa: ANN001
    _print_line({"type": "event", "input": result.input.display, **event.to_json()})


def _print_result(r, *, json_lines: bool, live: bool) -> None:  # noqa: ANN001
    """A finished input: a ``summary`` (or ``error``) JSON line with ``--stream`` / ``--live``; a line for
    people otherwise."""
    if json_lines:
        line = {
            "type": "summary",
            "input": r.input.display,
            "events": len(r.events),
            "snippets": r.snippets,
            "frames": r.frames,
            "fps": r.fps,
            "report": str(r.report) if r.report else None,
            "plot": str(r.plot) if r.plot else None,
        }
        if r.live:
            line.update(r.live)
        _print_line(line if r.ok else {"type": "error", "input": r.input.display, "error": r.error})
    if r.ok and not live:
        found = "; ".join(_event_text(e) for e in r.events[:5]) + (" ..." if len(r.events) > 5 else "")
        done = " (already scored, skipped)" if r.skipped else ""
        console.print(
            f"{r.input.name}: {len(r.events)} event(s){': ' + found if found else ''} -> {r.report}{done}",
            highlight=False,
            soft_wrap=True,
        )


def _log(text: str) -> None:
    console.print(f"{time.strftime('%H:%M:%S')} {text}", highlight=False, markup=False, soft_wrap=True)


def _key_values(
    ctx: click.Context, param: click.Parameter, items: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(
                f"{item!r}: expected KEY=VALUE, e.g. rtsp_transport=tcp", param_hint="--source-option"
            )
        pairs.append((key, value))
    return tuple(pairs)


@cli.command("predict")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--model",
    "model",
    required=True,
    help="Model directory (the --out of `cplvad train`) or a registry URI such as models:/cplvad@champion.",
)
@click.option(
    "--out",
    required=True,
    type=OutputFolder(s3=True),
    help="Folder or s3://bucket/prefix for OUT/<input name>.json (and .png with --plot) and OUT/index.json.",
)
@click.option("--plot", is_flag=True, help="Also write a timeline PNG per input.")
@click.option(
    "--report",
    "review",
    is_flag=True,
    help="Also write the review page OUT/index.html (every prediction in OUT, ranked; see `cplvad report`).",
)
@click.option(
    "--rescore",
    "resume",
    flag_value=False,
    default=True,
    help="Score every input again (default: skip inputs already in OUT for the same input, model and settings).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="Decision threshold on the anomaly score (default: the model's calibrated one).",
)
@click.option(
    "--stream",
    is_flag=True,
    help="Read each input chunk by chunk (bounded memory); print every event as a JSON line on stdout "
    "as soon as it ends, then a summary line.",
)
@click.option(
    "--live",
    is_flag=True,
    help="Score network streams (rtsp://, rtmp://, http(s)://, tcp://, udp://, ...) and growing files as "
    "they arrive: event_start / event_end JSON lines on stdout, reconnection, SIGINT/SIGTERM stop "
    "cleanly.",
)
@config_flag(
    "--latency",
    key="predict.latency",
    type=click.IntRange(0),
    help="--live: snippets of future context before a snippet is scored (predict.latency; AUC vs latency "
    "in the README).",
)
@config_flag(
    "--stall-timeout",
    key="predict.stall_timeout",
    type=click.FloatRange(0, min_open=True),
    help="--live: seconds without data before a source counts as dropped (predict.stall_timeout).",
)
@config_flag(
    "--reconnect-attempts",
    key="predict.reconnect_attempts",
    type=click.IntRange(0),
    help="--live: attempts without a frame before a source is given up, 0 = never "
    "(predict.reconnect_attempts).",
)
@click.option(
    "--webhook",
    default=None,
    metavar="URL",
    help="--live: POST every event line as JSON to URL (retried, in the background).",
)
@click.option(
    "--source-option",
    "source_options",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_key_values,
    help="--live: FFmpeg option for opening network sources, e.g. rtsp_transport=tcp (repeatable).",
)
@click.option(
    "--fps",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Frame rate of .npy feature inputs, for event times in seconds (videos use their own).",
)
@encoding_flags
@click.option(
    "--pretrained",
    default=None,
    help="Local CLIP weights file, when the path stored in the model does not exist here (checked "
    "against the model's checksum).",
)
@click.option(
    "--clip-config-dir", default=None, help="Folder of extra open_clip model configs, if the model needs one."
)
@config_options
@options_object(PredictOptions)
def predict_cmd(inputs: tuple[str, ...], model: str, options: PredictOptions, config: Config) -> None:
    """Score INPUT... (video files, folders, .npy feature files, s3://bucket/prefix): per-frame anomaly scores,
    class probabilities and detected events, one JSON per input."""
    from cplvad.predict import PredictHooks, predict

    if options.live and (options.stream or options.plot):
        raise click.UsageError(
            "--live reports events as they happen and writes its reports in parts: it cannot be "
            "combined with --stream or --plot (use --report for the review page)"
        )
    preflight.for_prediction(model, options.out, config)

    start = time.perf_counter()
    json_lines = options.stream or options.live
    hooks = PredictHooks(
        on_event=_print_event,
        on_result=partial(_print_result, json_lines=json_lines, live=options.live),
        on_line=_print_line,
        log=_log,
    )
    results = predict(inputs, model, config, options, hooks)
    _print_totals(results, time.perf_counter() - start, options.out)
    if any(not r.ok for r in results):
        sys.exit(1)


def _print_totals(results: list, seconds: float, out: str) -> None:
    ok = [r for r in results if r.ok and not r.skipped]
    skipped = sum(r.skipped for r in results)
    video = sum(r.video_seconds or 0.0 for r in ok)
    rate = f", {video / seconds:,.1f} video-s/s" if video else ""
    skip_note = f" ({skipped} already done, skipped)" if skipped else ""
    console.print(
        f"scored {len(ok)} of {len(results)} inputs{skip_note} ({video:,.1f} s of video) in {seconds:.1f} s"
        f"{rate}; outputs in {out}",
        highlight=False,
    )
    failures = [r.error for r in results if not r.ok]
    if failures:
        console.print(f"[bold red]{len(failures)} input(s) failed[/]:", highlight=False)
        for reason in failures:  # every reason names its file
            console.print(f"  {reason}", highlight=False, soft_wrap=True)


@cli.command("report")
@click.argument("out", type=OutputFolder(s3=True, create=False))
@click.option("--title", default=None, help="Page title (default: the folder).")
@click.option(
    "--clips/--no-clips",
    default=True,
    show_default=True,
    help="Write a browser-playable clip of every event of a video input (OUT/clips/; predict.clip_*).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Then serve the page on 127.0.0.1 and save the verdicts into OUT/verdicts.json as they are made "
    "(Ctrl-C stops; the page also works alone, from file://).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="--serve: port.")
@config_options
def report_cmd(out: str, title: str | None, clips: bool, serve: bool, port: int, config: Config) -> None:
    """Write the review page OUT/index.html for a folder (or s3:// prefix) of `cplvad predict` outputs:
    videos ranked by peak anomaly score, with timelines, events and their clips, class and score filters,
    a player, and verdicts (confirmed / false alarm, reviewed / missed anomaly) to export for
    `cplvad feedback add`."""
    from cplvad.errors import DataError
    from cplvad.predict.clips import ClipSettings
    from cplvad.predict.review_page import collect, write_review_page
    from cplvad.storage.location import is_url, open_location

    if not is_url(out) and not Path(out).is_dir():
        raise DataError(f"{out} is not a folder; give the --out folder of `cplvad predict`")
    if serve and is_url(out):
        raise click.UsageError("--serve serves a local folder; copy the predictions from S3 first")
    sink = open_location(out)
    items, _ = collect(sink)
    if not items:
        raise DataError(f"{out} holds no prediction document (OUT/<name>.json of `cplvad predict`)")
    where = write_review_page(sink, title, ClipSettings.of(config.predict) if clips else None)
    console.print(f"review page of {len(items)} prediction(s): {where}", highlight=False)
    if serve:
        _serve(out, port)


def _serve(out: str, port: int) -> None:
    from cplvad.predict.review_server import review_server

    server = review_server(out, port, log=_log)
    host, bound = server.server_address[:2]
    console.print(
        f"serving {out} on http://{host}:{bound}/ (verdicts saved to {Path(out) / 'verdicts.json'}); "
        "Ctrl-C stops",
        highlight=False,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped", highlight=False)
    finally:
        server.server_close()
