"""Score many inputs with one loaded model: ``OUT/<name>.json`` per input (and ``OUT/<name>.png`` with
``plot``), each written whole (atomic rename in a folder, one PUT on ``s3://``).

Batch mode: feature files are read whole; videos (local or on S3) go through one worker pool and one batched
CLIP encoder (``FeatureEncoder.videos``), and the snippet chunks of all inputs are scored in shared batches
(``score_videos``). An input whose document is already in OUT for the same input, model and settings is
skipped (``resume``), so an interrupted or repeated run does only what is missing. Streaming mode: one input
after the other, chunk by chunk with bounded memory (``FeatureEncoder.stream`` / memory-mapped feature files +
``StreamScorer``), events reported through a callback as soon as they end. Both give the same scores and
events. Live sources are ``cplvad.predict.live``.

An input that fails (unreadable or corrupt video, too short, bad ``.npy``, features of another width than
the model's) is reported with its reason and the others go on; the caller decides the exit status.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cplvad.clip_weights import check_clip_weights
from cplvad.config import Config
from cplvad.data.features import load_features, open_features
from cplvad.errors import CplvadError, DataError
from cplvad.eval.events import Event, EventTracker, find_events
from cplvad.eval.scoring import score_videos
from cplvad.extract.inmemory import FeatureEncoder
from cplvad.extract.pool import Failed
from cplvad.extract.video import VideoError, VideoInfo, probe_fps
from cplvad.io import utf8
from cplvad.monitor.histograms import HistogramKeeper, source_of
from cplvad.predict.index import entry_from_report, failed_entry
from cplvad.predict.inputs import Input
from cplvad.predict.predictor import Predictor
from cplvad.predict.report import (
    ScoredInput,
    ScoringSettings,
    build_report,
    identity,
    read_report,
    report_json,
)
from cplvad.predict.stream import StreamScorer
from cplvad.storage.location import object_size, open_location

SCORE_BATCH = 64
"""Chunks of n snippets per forward pass of the temporal model."""


@dataclass(frozen=True)
class PredictOptions:
    """What ``cplvad predict`` is asked for beyond the config (``predict``, ``extract``, ``tracking``): built once,
    by the command, a scoring job or a caller of ``predict``, and read as it is by the runners."""

    out: str | Path
    """Output folder or ``s3://bucket/prefix``."""
    plot: bool = False
    """Also write a timeline PNG per input (``OUT/<name>.png``)."""
    review: bool = False
    """Also write the review page ``OUT/index.html``."""
    resume: bool = True
    """Skip inputs whose document in OUT is for the same input, model and settings (batch mode)."""
    threshold: float | None = None
    """A user threshold; None = the model's calibrated one."""
    stream: bool = False
    """Score each input chunk by chunk with bounded memory, events reported as they end."""
    live: bool = False
    """Score network streams and growing files as they arrive (``cplvad.predict.live``)."""
    webhook: str | None = None
    """Live: POST every event line as JSON to this URL."""
    source_options: tuple[tuple[str, str], ...] = ()
    """Live: FFmpeg options for opening network sources (e.g. ``("rtsp_transport", "tcp")``)."""
    fps: float | None = None
    """Frame rate of feature inputs (videos use their own); None = seconds are null."""
    pretrained: str | None = None
    """A local CLIP weights file, when the path stored in the model does not exist here."""
    clip_config_dir: str | None = None
    """A folder of extra open_clip model configs, if the model needs one."""


@dataclass(frozen=True)
class PredictHooks:
    """What the caller hears while inputs are scored (each optional)."""

    on_event: Callable[[InputResult, Event], None] | None = None
    """Streaming: an event, as soon as it ended."""
    on_result: Callable[[InputResult], None] | None = None
    """An input, as soon as it is done (or failed)."""
    on_line: Callable[[dict[str, Any]], None] | None = None
    """Live: every event line (``event_start`` / ``event_end``)."""
    log: Callable[[str], None] = print
    """Live: messages on the sources and the session."""


@dataclass
class InputResult:
    input: Input
    report: str | Path | None = None
    """Where the document went (a local Path, or an ``s3://`` URI)."""
    plot: str | Path | None = None
    events: list[Event] = field(default_factory=list)
    snippets: int = 0
    frames: int = 0
    fps: float | None = None
    error: str | None = None
    skipped: bool = False
    """Already in OUT for the same input, model and settings (not scored again)."""
    entry: dict[str, Any] | None = None
    """This input's line of ``OUT/index.json``."""
    live: dict[str, Any] | None = None
    """Live mode: the session's ``events``, ``reconnects``, ``parts``, ``ended`` (why) and ``started_at``."""

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
    """Scores inputs with one loaded model into ``options.out``; ``config``: this run's config (events, CLIP
    encoding workers and batch size)."""

    def __init__(self, predictor: Predictor, config: Config, options: PredictOptions) -> None:
        self.predictor = predictor
        self.config = config
        self.options = options
        self.sink = open_location(str(options.out))
        self.scoring = ScoringSettings(
            predictor,
            predictor.threshold(options.threshold),
            config.predict.min_event_snippets,
            predictor.config.extract.frames_per_snippet,
        )
        self._encoder: FeatureEncoder | None = None
        self.last_scorer: StreamScorer | None = None
        """The scorer of the last streamed input (its ``peak_pending`` shows the memory bound held)."""
        self.histograms = HistogramKeeper(self.sink, predictor.describe(), self.scoring.threshold.value)
        """Per-source daily score histograms (``OUT/monitor/``), for ``cplvad monitor``."""

    @property
    def encoder(self) -> FeatureEncoder:
        """Built on first use: feature inputs alone never load CLIP."""
        if self._encoder is None:
            self._encoder = make_encoder(
                self.predictor, self.config, self.options.pretrained, self.options.clip_config_dir
            )
        return self._encoder

    # ------------------------------------------------------------------------------------------- batch

    def run(
        self, inputs: Sequence[Input], on_result: Callable[[InputResult], None] | None = None
    ) -> list[InputResult]:
        """Score every input; results in input order (``on_result`` is called as each one finishes)."""
        results = [InputResult(inp) for inp in inputs]

        def fail(i: int, reason: str) -> None:
            self._fail(results[i], reason)
            if on_result:
                on_result(results[i])

        todo = []
        for i, r in enumerate(results):
            if r.input.kind == "stream":
                fail(i, f"{r.input.display} is a network stream: score it with --live")
            elif self.options.resume and self._skip_if_done(r):
                if on_result:
                    on_result(r)
            else:
                todo.append(i)

        def features() -> Iterator[tuple[int, np.ndarray]]:
            for i in todo:
                inp = inputs[i]
                if inp.kind == "features":
                    try:
                        feats = load_features(inp.path, expected_dim=self.predictor.feature_dim)
                    except CplvadError as exc:
                        fail(i, str(exc))
                        continue
                    results[i].fps = self.options.fps
                    results[i].frames = len(feats) * self.scoring.frames_per_snippet
                    yield i, feats
            videos = [i for i in todo if inputs[i].kind == "video"]
            if videos:
                for k, item in self.encoder.videos([inputs[i].uri for i in videos]):
                    i = videos[k]
                    if isinstance(item, Failed):
                        fail(i, f"{inputs[i].display}: {item.reason}")
                    else:
                        results[i].fps, results[i].frames = item.info.fps, item.info.frames
                        yield i, item.features

        p, scoring = self.predictor, self.scoring
        try:
            for i, binary, classes in score_videos(p.model, features(), p.device, SCORE_BATCH):
                r = results[i]
                events = find_events(
                    binary,
                    classes,
                    scoring.threshold.value,
                    scoring.min_event_snippets,
                    p.classes,
                    scoring.frames_per_snippet,
                    r.fps,
                )
                self.write_document(r, binary, classes, events)
                self.count_scores(r.input, r.input.name, binary)
                if on_result:
                    on_result(r)
        finally:
            self.histograms.flush()
        return results

    def count_scores(self, inp: Input, key: str, binary: np.ndarray) -> None:
        """Add scored snippets of ``inp`` (``key``: the input, or a live session) to its source's histogram."""
        self.histograms.add(source_of(inp.uri, inp.kind, inp.name), key, binary)
        self.histograms.maybe_flush()

    def _skip_if_done(self, r: InputResult) -> bool:
        """Fill ``r`` from OUT and return True when OUT already holds this input's result."""
        name = r.input.name
        r.fps = self.options.fps if r.input.kind == "features" else None
        doc = read_report(self.sink.read_bytes(f"{name}.json"))
        if doc is None or identity(doc) != identity(self._document(r, np.zeros(0), np.zeros((0, 1)), [])):
            return False
        if self.options.plot and self.sink.read_bytes(f"{name}.png") is None:
            return False
        r.skipped = True
        r.events = [Event.from_json(e) for e in doc["events"]]
        r.snippets, r.frames, r.fps = doc["snippets"], doc["frames"], doc["fps"]
        r.report = self._location(f"{name}.json")
        r.plot = self._location(f"{name}.png") if self.options.plot else None
        r.entry = entry_from_report(name, doc, f"{name}.json", f"{name}.png" if self.options.plot else None)
        return True

    # --------------------------------------------------------------------------------------- streaming

    def stream(
        self,
        inputs: Sequence[Input],
        on_event: Callable[[InputResult, Event], None] | None = None,
        on_result: Callable[[InputResult], None] | None = None,
    ) -> list[InputResult]:
        """Score the inputs one by one, chunk by chunk with bounded memory; ``on_event`` as events end."""
        results = []
        try:
            for inp in inputs:
                r = InputResult(inp)
                try:
                    if inp.kind == "stream":
                        raise DataError(f"{inp.display} is a network stream: score it with --live")
                    self._stream_one(r, on_event)
                except (CplvadError, VideoError, OSError) as exc:
                    self._fail(r, str(exc) if isinstance(exc, CplvadError) else f"{inp.display}: {exc}")
                results.append(r)
                if on_result:
                    on_result(r)
        finally:
            self.histograms.flush()
        return results

    def _stream_one(self, r: InputResult, on_event: Callable[[InputResult, Event], None] | None) -> None:
        p, inp = self.predictor, r.input
        r.fps = self.options.fps if inp.kind == "features" else probe_fps(inp.uri)
        s = self.scoring
        tracker = EventTracker(
            s.threshold.value, s.min_event_snippets, p.classes, s.frames_per_snippet, r.fps
        )
        scorer = StreamScorer(p.model, p.device, tracker, source=inp.display)
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
                    raise CplvadError(
                        f"feature file {inp.path} holds NaN/inf values (first at snippet {bad})"
                    )
                emit(scorer.add(block))
            r.frames = len(arr) * s.frames_per_snippet
        else:
            for item in self.encoder.stream(inp.uri):
                if isinstance(item, VideoInfo):
                    r.frames = item.frames
                else:
                    emit(scorer.add(item))
        emit(scorer.finish())
        binary, classes = scorer.scores()
        self.write_document(r, binary, classes, events)
        self.count_scores(inp, inp.name, binary)

    # ------------------------------------------------------------------------------------------ output

    def _document(
        self, r: InputResult, binary: np.ndarray, classes: np.ndarray, events: list[Event], **extra: Any
    ) -> dict[str, Any]:
        inp = r.input
        scored = ScoredInput(
            input_path=inp.display,
            input_kind=inp.kind,
            input_bytes=object_size(inp.uri) if inp.kind != "stream" else None,
            fps=r.fps,
            frames=r.frames,
            binary=binary,
            classes=classes,
            events=events,
        )
        return build_report(scored, self.scoring, **extra)

    def _location(self, rel: str) -> str | Path:
        return self.sink.local / rel if self.sink.local is not None else self.sink.uri(rel)

    def _fail(self, r: InputResult, reason: str) -> None:
        r.error = reason
        r.entry = failed_entry(r.input.name, r.input.display, r.input.kind, reason)

    def write_document(
        self,
        r: InputResult,
        binary: np.ndarray,
        classes: np.ndarray,
        events: list[Event],
        name: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Write the document (and the plot) of ``r`` as ``OUT/<name>.json``; returns the document."""
        p, opts, scoring = self.predictor, self.options, self.scoring
        name = name or r.input.name
        r.events, r.snippets = events, len(binary)
        doc = self._document(r, binary, classes, events, **extra)
        self.sink.write_bytes(f"{name}.json", utf8(report_json(doc)))
        r.report = self._location(f"{name}.json")
        plot = None
        if opts.plot:
            plot = f"{name}.png"
            title = (
                f"{r.input.display.rsplit('/', 1)[-1]}  |  model {p.version}  |  threshold "
                f"{scoring.threshold.value:.3f} ({scoring.threshold.source})  |  {len(events)} event(s)"
            )
            self._write_plot(
                plot,
                binary,
                classes,
                p.classes,
                events,
                scoring.threshold.value,
                scoring.frames_per_snippet,
                r.fps,
                title,
            )
            r.plot = self._location(plot)
        r.entry = entry_from_report(name, doc, f"{name}.json", plot)
        return doc

    def _write_plot(self, rel: str, *args: Any) -> None:
        from cplvad.predict.plot import write_timeline  # matplotlib only when plotting

        if self.sink.local is not None:
            write_timeline(self.sink.local / rel, *args)
            return
        with tempfile.TemporaryDirectory(prefix="cplvad-plot-") as tmp:
            self.sink.write_bytes(rel, write_timeline(Path(tmp) / rel, *args).read_bytes())
