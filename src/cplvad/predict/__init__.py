"""Scoring real footage with a trained model: ``cplvad predict``.

Modules: ``inputs`` (what to score), ``predictor`` (the loaded model, its version and threshold), ``stream``
(chunk-by-chunk scoring), ``report`` (the JSON document per input, schema ``cplvad-prediction/1``), ``plot``
(timeline PNG), ``run`` (many inputs, one model), ``index`` (``OUT/index.json``), ``review_page``
(``OUT/index.html``, from ``templates/``), ``clips`` (the events' playable clips), ``review_server``
(``cplvad report --serve``); live sources: ``sliding`` (sliding-window scoring), ``live_source`` (reading,
reconnecting), ``webhook`` and ``live`` (the session). Events (runs above the threshold) are
``cplvad.eval.events``, shared with the evaluation of feedback; the score histograms the jobs keep for drift
monitoring are ``cplvad.monitor.histograms``. ``predict`` below is the whole command as a function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cplvad.config import Config
from cplvad.device import resolve_device
from cplvad.eval.events import Event
from cplvad.predict.clips import ClipSettings
from cplvad.predict.index import update_index
from cplvad.predict.inputs import Input, list_inputs
from cplvad.predict.live import LiveOptions, LiveRunner
from cplvad.predict.live_source import LiveSettings
from cplvad.predict.predictor import Predictor, open_predictor
from cplvad.predict.review_page import write_review_page
from cplvad.predict.run import InputResult, PredictOptions, PredictRunner, make_encoder
from cplvad.storage.location import Location


def predict(
    inputs: Sequence[str | Path],
    model: str | Path,
    out: str | Path,
    config: Config,
    *,
    plot: bool = False,
    threshold: float | None = None,
    stream: bool = False,
    fps: float | None = None,
    device: str | None = None,
    pretrained: str | None = None,
    clip_config_dir: str | None = None,
    resume: bool = True,
    review: bool = False,
    live: bool = False,
    webhook: str | None = None,
    source_options: Sequence[tuple[str, str]] = (),
    on_event: Callable[[InputResult, Event], None] | None = None,
    on_result: Callable[[InputResult], None] | None = None,
    on_line: Callable[[dict[str, Any]], None] | None = None,
    log: Callable[[str], None] = print,
) -> list[InputResult]:
    """Score ``inputs`` (videos, folders, .npy features) with ``model`` (a directory or ``models:/...``).

    ``config`` is this run's config: ``predict.min_event_snippets``, ``extract.workers`` / ``batch_size`` /
    ``device`` (``device`` overrides the latter) and ``tracking`` (for registry URIs). How videos are encoded
    comes from the model's own config. ``out`` is a folder or ``s3://`` prefix; ``OUT/index.json`` is updated
    with every input, and ``review`` also writes the review page ``OUT/index.html``.

    ``live``: score network streams and growing files as they arrive (``cplvad.predict.live``, settings from
    ``config.predict``), event lines through ``on_line``, messages through ``log``.
    """
    items = list_inputs(inputs)
    predictor = open_predictor(
        model, config, resolve_device(device or config.extract.device, "--device / extract.device")
    )
    options = PredictOptions(
        out=str(out),
        plot=plot,
        threshold=threshold,
        fps=fps,
        min_event_snippets=config.predict.min_event_snippets,
        resume=resume,
    )
    runner = PredictRunner(
        predictor, options, lambda: make_encoder(predictor, config, pretrained, clip_config_dir)
    )
    if live:
        results = LiveRunner(runner, live_options(config, webhook, source_options), log).run(
            items, on_line, on_result
        )
    elif stream:
        results = runner.stream(items, on_event, on_result)
    else:
        results = runner.run(items, on_result)
    finish_outputs(runner.sink, results, review, ClipSettings.of(config.predict))
    return results


def live_options(
    config: Config, webhook: str | None, source_options: Sequence[tuple[str, str]]
) -> LiveOptions:
    c = config.predict
    settings = LiveSettings(
        stall_timeout=c.stall_timeout,
        reconnect_attempts=c.reconnect_attempts,
        backoff=c.reconnect_backoff,
        backoff_max=c.reconnect_backoff_max,
        options=tuple(source_options),
    )
    return LiveOptions(
        latency=c.latency,
        settings=settings,
        webhook=webhook,
        webhook_timeout=c.webhook_timeout,
        webhook_retries=c.webhook_retries,
        part_snippets=c.live_part_snippets,
        flush_seconds=c.live_flush_seconds,
    )


def finish_outputs(
    sink: Location, results: Sequence[InputResult], review: bool, clips: ClipSettings | None = None
) -> None:
    """``OUT/index.json`` with every input of this run, and the review page (with ``clips``) when asked for."""
    update_index(sink, [r.entry for r in results if r.entry is not None])
    if review:
        write_review_page(sink, clips=clips)


__all__ = [
    "Event",
    "Input",
    "InputResult",
    "LiveOptions",
    "LiveRunner",
    "PredictOptions",
    "PredictRunner",
    "Predictor",
    "finish_outputs",
    "list_inputs",
    "live_options",
    "make_encoder",
    "open_predictor",
    "predict",
]
