"""``cplvad predict``: score videos or feature files with a trained model.

Exit status: 0 when every input was scored, 1 when any input failed (the others are still scored and
written; the reasons are printed), 2 for a usage, configuration or model error (nothing is scored).
"""

from __future__ import annotations

import json
import sys
import time

import click

from cplvad import preflight
from cplvad.cli.main import cli, config_options, console, with_flags
from cplvad.config import Config


def _event_text(e) -> str:  # noqa: ANN001
    where = f"{e.start_s:.1f}-{e.end_s:.1f} s" if e.start_s is not None else f"frames {e.start_frame}-{e.end_frame}"
    return f"{e.label} {where} (score {e.score:.2f})"


@cli.command("predict")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "model", required=True,
              help="Model directory (the --out of `cplvad train`) or a registry URI such as models:/cplvad@champion.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for OUT/<input name>.json (and .png with --plot).")
@click.option("--plot", is_flag=True, help="Also write a timeline PNG per input.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Decision threshold on the anomaly score (default: the model's calibrated one).")
@click.option("--stream", is_flag=True,
              help="Read each input chunk by chunk (bounded memory); print every event as a JSON line on stdout "
                   "as soon as it ends, then a summary line.")
@click.option("--fps", type=click.FloatRange(0, min_open=True), default=None,
              help="Frame rate of .npy feature inputs, for event times in seconds (videos use their own).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Device for CLIP and the model (default: extract.device).")
@click.option("--workers", type=int, default=None, help="Decode worker processes (extract.workers).")
@click.option("--batch-size", type=int, default=None, help="Images per CLIP forward pass (extract.batch_size).")
@click.option("--pretrained", default=None,
              help="Local CLIP weights file, when the path stored in the model does not exist here (checked "
                   "against the model's checksum).")
@click.option("--clip-config-dir", default=None, help="Folder of extra open_clip model configs, if the model needs one.")
@config_options
def predict_cmd(
    inputs: tuple[str, ...], model: str, out: str, plot: bool, threshold: float | None, stream: bool,
    fps: float | None, device: str | None, workers: int | None, batch_size: int | None, pretrained: str | None,
    clip_config_dir: str | None, config: Config,
) -> None:
    """Score INPUT... (video files, folders, .npy feature files): per-frame anomaly scores, class
    probabilities and detected events, one JSON per input."""
    from cplvad.predict import predict

    config = with_flags(config, {"extract": {"workers": workers, "batch_size": batch_size, "device": device}})
    preflight.for_prediction(model, out, config)

    def on_event(result, event) -> None:  # noqa: ANN001
        click.echo(json.dumps({"type": "event", "input": str(result.input.path), **event.to_json()}))
        sys.stdout.flush()

    def on_result(r) -> None:  # noqa: ANN001
        if stream:
            if r.ok:
                line = {"type": "summary", "input": str(r.input.path), "events": len(r.events),
                        "snippets": r.snippets, "frames": r.frames, "fps": r.fps, "report": str(r.report),
                        "plot": str(r.plot) if r.plot else None}
            else:
                line = {"type": "error", "input": str(r.input.path), "error": r.error}
            click.echo(json.dumps(line))
            sys.stdout.flush()
        if r.ok:
            found = "; ".join(_event_text(e) for e in r.events[:5]) + (" ..." if len(r.events) > 5 else "")
            console.print(f"{r.input.path.name}: {len(r.events)} event(s){': ' + found if found else ''} -> {r.report}",
                          highlight=False, soft_wrap=True)

    start = time.perf_counter()
    results = predict(
        inputs, model, out, config, plot=plot, threshold=threshold, stream=stream, fps=fps, device=device,
        pretrained=pretrained, clip_config_dir=clip_config_dir, on_event=on_event, on_result=on_result,
    )
    seconds = time.perf_counter() - start
    ok = [r for r in results if r.ok]
    video = sum(r.video_seconds or 0.0 for r in ok)
    rate = f", {video / seconds:,.1f} video-s/s" if video else ""
    console.print(f"scored {len(ok)} of {len(results)} inputs ({video:,.1f} s of video) in {seconds:.1f} s{rate}; "
                  f"outputs in {out}", highlight=False)
    failures = [r.error for r in results if not r.ok]
    if failures:
        console.print(f"[bold red]{len(failures)} input(s) failed[/]:", highlight=False)
        for reason in failures:  # every reason names its file
            console.print(f"  {reason}", highlight=False, soft_wrap=True)
        sys.exit(1)
