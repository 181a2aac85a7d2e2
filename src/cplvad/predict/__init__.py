"""Scoring real footage with a trained model: ``cplvad predict``.

Modules: ``inputs`` (what to score), ``predictor`` (the loaded model, its version and threshold), ``stream``
(chunk-by-chunk scoring), ``report`` (the JSON document per input, schema ``cplvad-prediction/1``), ``plot``
(timeline PNG), ``run`` (many inputs, one model), ``index`` (``OUT/index.json``), ``review_page``
(``OUT/index.html``, from ``templates/``), ``clips`` (the events' playable clips), ``review_server``
(``cplvad report --serve``); live sources: ``sliding`` (sliding-window scoring), ``live_source`` (reading,
reconnecting), ``live_scoring`` (window and events), ``live_report`` (event lines, report parts), ``webhook``
and ``live`` (the session). Events (runs above the threshold) are
``cplvad.eval.events``, shared with the evaluation of feedback; the score histograms the jobs keep for drift
monitoring are ``cplvad.monitor.histograms``. ``predict`` below is the whole command as a function.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cplvad.config import Config
from cplvad.device import resolve_device
from cplvad.eval.events import Event
from cplvad.predict.clips import ClipSettings
from cplvad.predict.index import update_index
from cplvad.predict.inputs import Input, list_inputs
from cplvad.predict.live import LiveRunner
from cplvad.predict.predictor import Predictor, open_predictor
from cplvad.predict.review_page import write_review_page
from cplvad.predict.run import InputResult, PredictHooks, PredictOptions, PredictRunner, make_encoder
from cplvad.storage.location import Location


def predict(
    inputs: Sequence[str | Path],
    model: str | Path,
    config: Config,
    options: PredictOptions,
    hooks: PredictHooks | None = None,
) -> list[InputResult]:
    """Score ``inputs`` (videos, folders, .npy features) with ``model`` (a directory or ``models:/...``) as
    ``options`` say (``options.out``: a folder or ``s3://`` prefix), telling the caller through ``hooks``.

    ``config`` is this run's config: ``predict`` (events; the live settings), ``extract.workers`` /
    ``batch_size`` / ``device`` and ``tracking`` (for registry URIs). How videos are encoded comes from the
    model's own config. ``OUT/index.json`` is updated with every input, and ``options.review`` also writes
    the review page ``OUT/index.html``.

    ``options.live``: score network streams and growing files as they arrive (``cplvad.predict.live``), event
    lines through ``hooks.on_line``, messages through ``hooks.log``.
    """
    items = list_inputs(inputs)
    predictor = open_predictor(
        model, config, resolve_device(config.extract.device, "--device / extract.device")
    )
    runner = PredictRunner(predictor, config, options)
    hooks = hooks or PredictHooks()
    if options.live:
        results = LiveRunner(runner, hooks).run(items)
    elif options.stream:
        results = runner.stream(items, hooks.on_event, hooks.on_result)
    else:
        results = runner.run(items, hooks.on_result)
    finish_outputs(runner.sink, results, options.review, ClipSettings.of(config.predict))
    return results


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
    "LiveRunner",
    "PredictHooks",
    "PredictOptions",
    "PredictRunner",
    "Predictor",
    "finish_outputs",
    "list_inputs",
    "make_encoder",
    "open_predictor",
    "predict",
]
