"""Scoring real footage with a trained model: ``cplvad predict``.

Modules: ``inputs`` (what to score), ``model`` (the loaded model, its version and threshold), ``events``
(runs above the threshold), ``stream`` (chunk-by-chunk scoring), ``report`` (the JSON document,
schema ``cplvad-prediction/1``), ``plot`` (timeline PNG) and ``run`` (many inputs, one model).
``predict`` below is the whole command as a function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from cplvad.config import Config
from cplvad.device import resolve_device
from cplvad.predict.events import Event
from cplvad.predict.inputs import Input, list_inputs
from cplvad.predict.predictor import Predictor, open_predictor
from cplvad.predict.run import InputResult, PredictOptions, PredictRunner, make_encoder


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
    on_event: Callable[[InputResult, Event], None] | None = None,
    on_result: Callable[[InputResult], None] | None = None,
) -> list[InputResult]:
    """Score ``inputs`` (videos, folders, .npy features) with ``model`` (a directory or ``models:/...``).

    ``config`` is this run's config: ``predict.min_event_snippets``, ``extract.workers`` / ``batch_size`` /
    ``device`` (``device`` overrides the latter) and ``tracking`` (for registry URIs). How videos are encoded
    comes from the model's own config.
    """
    items = list_inputs(inputs)
    predictor = open_predictor(model, config, resolve_device(device or config.extract.device, "--device / extract.device"))
    options = PredictOptions(
        out=Path(out), plot=plot, threshold=threshold, fps=fps,
        min_event_snippets=config.predict.min_event_snippets,
    )
    runner = PredictRunner(predictor, options, lambda: make_encoder(predictor, config, pretrained, clip_config_dir))
    if stream:
        return runner.stream(items, on_event, on_result)
    return runner.run(items, on_result)


__all__ = ["Event", "Input", "InputResult", "PredictOptions", "PredictRunner", "Predictor", "list_inputs",
           "make_encoder", "open_predictor", "predict"]
