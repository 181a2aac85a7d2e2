"""Score many inputs with one loaded model: ``OUT/<name>.json`` per input (and ``OUT/<name>.png`` with
``plot``), each written atomically.

Batch mode: feature files are read whole; videos go through one worker pool and one batched CLIP
encoder (``FeatureEncoder.videos``), and the snippet chunks of all inputs are scored in shared batches
(``score_videos``). Streaming mode: one input after the other, chunk by chunk with bounded memory
(``FeatureEncoder.stream`` / memory-mapped feature files + ``StreamScorer``), events reported through a
callback as soon as they end. Both give the same scores and events.

An input that fails (unreadable or corrupt video, too short, bad ``.npy``, features of another width than
the model's) is reported with its reason and the others go on; the caller decides the exit status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cplvad.config import Config
from cplvad.data.features import load_features, open_features
from cplvad.errors import CplvadError
from cplvad.eval.scoring import score_videos
from cplvad.extract.inmemory import FeatureEncoder
from cplvad.extract.pool import Failed
from cplvad.extract.video import VideoError, VideoInfo, probe_fps
from cplvad.predict.events import Event, EventTracker, find_events
from cplvad.predict.inputs import Input
from cplvad.predict.predictor import Predictor, Threshold
from cplvad.predict.report import build_report, write_report
from cplvad.predict.stream import StreamScorer
from cplvad.preflight.files import check_clip_weights


@dataclass
class PredictOptions:
    out: Path
    plot: bool = False
    threshold: float | None = None
    """A user threshold; None = the model's calibrated one."""
    fps: float | None = None
    """Frame rate of feature inputs (videos use their own); None = seconds are null."""
    min_event_snippets: int = 1
    batch_size: int = 64
    """Chunks of n snippets per forward pass of the temporal model."""


@dataclass
class InputResult:
    input: Input
    report: Path | None = None
    plot: Path | None = None
    events: list[Event] = field(default_factory=list)
    snippets: int = 0
    frames: int = 0
    fps: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def video_seconds(self) -> float | None:
        return self.frames / self.fps if self.ok and self.fps else None


def make_encoder(
    predictor: Predictor, runtime: Config, pretrained: str | None = None, config_dir: str | None = None
) -> FeatureEncoder:
    """The CLIP encoder of the model's training config (checked against the model), this run's workers."""
    config = predictor.encoding_config(runtime, pretrained, config_dir)
    check_clip_weights(config.clip)  # a truncated weights file fails here, before the encoder is built
    encoder = FeatureEncoder(config, predictor.device)
    predictor.check_clip(encoder.bundle.weights_sha256, encoder.feature_dim)
    return encoder


class PredictRunner:
    def __init__(
        self, predictor: Predictor, options: PredictOptions, encoder: Callable[[], FeatureEncoder]
    ) -> None:
        self.predictor = predictor
        self.options = options
        self.threshold: Threshold = predictor.threshold(options.threshold)
        self.frames_per_snippet = predictor.config.extract.frames_per_snippet
        self._make_encoder = encoder
        self._encoder: FeatureEncoder | None = None
        self.last_scorer: StreamScorer | None = None
        """The scorer of the last streamed input (its ``peak_pending`` shows the memory bound held)."""

    @property
    def encoder(self) -> FeatureEncoder:
        """Built on first use: feature inputs alone never load CLIP."""
        if self._encoder is None:
            self._encoder = self._make_encoder()
        return self._encoder

    # ------------------------------------------------------------------------------------------- batch

    def run(self, inputs: Sequence[Input], on_result: Callable[[InputResult], None] | None = None) -> list[InputResult]:
        """Score every input; results in input order (``on_result`` is called as each one finishes)."""
        results = [InputResult(inp) for inp in inputs]

        def fail(i: int, reason: str) -> None:
            results[i].error = reason
            if on_result:
                on_result(results[i])

        def features() -> Iterator[tuple[int, np.ndarray]]:
            for i, inp in enumerate(inputs):
                if inp.kind == "features":
                    try:
                        feats = load_features(inp.path, expected_dim=self.predictor.feature_dim)
                    except CplvadError as exc:
                        fail(i, str(exc))
                        continue
                    results[i].fps, results[i].frames = self.options.fps, len(feats) * self.frames_per_snippet
                    yield i, feats
            videos = [i for i, inp in enumerate(inputs) if inp.kind == "video"]
            if videos:
                for k, item in self.encoder.videos([str(inputs[i].path) for i in videos]):
                    i = videos[k]
                    if isinstance(item, Failed):
                        fail(i, f"{inputs[i].path}: {item.reason}")
                    else:
                        results[i].fps, results[i].frames = item.info.fps, item.info.frames
                        yield i, item.features

        p = self.predictor
        for i, binary, classes in score_videos(p.model, features(), p.device, self.options.batch_size):
            r = results[i]
            events = find_events(binary, classes, self.threshold.value, self.options.min_event_snippets,
                                 p.classes, self.frames_per_snippet, r.fps)
            self._write(r, binary, classes, events)
            if on_result:
                on_result(r)
        return results

    # --------------------------------------------------------------------------------------- streaming

    def stream(
        self,
        inputs: Sequence[Input],
        on_event: Callable[[InputResult, Event], None] | None = None,
        on_result: Callable[[InputResult], None] | None = None,
    ) -> list[InputResult]:
        """Score the inputs one by one, chunk by chunk with bounded memory; ``on_event`` as events end."""
        results = []
        for inp in inputs:
            r = InputResult(inp)
            try:
                self._stream_one(r, on_event)
            except (CplvadError, VideoError, OSError) as exc:
                r.error = str(exc) if isinstance(exc, CplvadError) else f"{inp.path}: {exc}"
            results.append(r)
            if on_result:
                on_result(r)
        return results

    def _stream_one(self, r: InputResult, on_event: Callable[[InputResult, Event], None] | None) -> None:
        p, inp = self.predictor, r.input
        r.fps = self.options.fps if inp.kind == "features" else probe_fps(inp.path)
        tracker = EventTracker(self.threshold.value, self.options.min_event_snippets, p.classes,
                               self.frames_per_snippet, r.fps)
        scorer = StreamScorer(p.model, p.device, tracker, source=str(inp.path))
        self.last_scorer = scorer
        events: list[Event] = []

        def emit(new: list[Event]) -> None:
            events.extend(new)
            for e in new:
                if on_event:
                    on_event(r, e)

        if inp.kind == "features":
            arr = open_features(inp.path, expected_dim=p.feature_dim)  # memory-mapped
            for s in range(0, len(arr), scorer.n):
                block = np.asarray(arr[s : s + scorer.n], dtype=np.float32)
                if not np.isfinite(block).all():
                    bad = s + int(np.argwhere(~np.isfinite(block))[0, 0])
                    raise CplvadError(f"feature file {inp.path} holds NaN/inf values (first at snippet {bad})")
                emit(scorer.add(block))
            r.frames = len(arr) * self.frames_per_snippet
        else:
            for item in self.encoder.stream(str(inp.path)):
                if isinstance(item, VideoInfo):
                    r.frames = item.frames
                else:
                    emit(scorer.add(item))
        emit(scorer.finish())
        binary, classes = scorer.scores()
        self._write(r, binary, classes, events)

    # ------------------------------------------------------------------------------------------ output

    def _write(self, r: InputResult, binary: np.ndarray, classes: np.ndarray, events: list[Event]) -> None:
        p, opts = self.predictor, self.options
        r.events, r.snippets = events, len(binary)
        report = build_report(
            input_path=str(r.input.path), input_kind=r.input.kind, predictor=p, threshold=self.threshold,
            min_event_snippets=opts.min_event_snippets, fps=r.fps, frames=r.frames,
            frames_per_snippet=self.frames_per_snippet, binary=binary, classes=classes, events=events,
        )
        r.report = write_report(opts.out / f"{r.input.name}.json", report)
        if opts.plot:
            from cplvad.predict.plot import write_timeline  # matplotlib only when plotting

            title = (f"{r.input.path.name}  |  model {p.version}  |  threshold {self.threshold.value:.3f} "
                     f"({self.threshold.source})  |  {len(events)} event(s)")
            r.plot = write_timeline(opts.out / f"{r.input.name}.png", binary, classes, p.classes, events,
                                    self.threshold.value, self.frames_per_snippet, r.fps, title)
