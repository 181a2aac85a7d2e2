"""Batch scoring of a bucket of footage with a registered model: the library side of the Kubeflow ``scoring``
pipeline (``pipelines/scoring.py``), also usable from Python.

``plan`` lists the source (an ``s3://`` prefix, a folder or a list file, as ``cplvad extract --videos`` reads
them) and cuts it into ``K/N`` shards; ``score_shard`` scores every N-th video into the output prefix with
``PredictRunner`` (per-video JSON and timeline PNG, skipping videos already done for the same model and
settings, so a retried or re-run shard only does what is missing) and returns its part of the index;
``collect`` merges the parts into ``OUT/index.json``, writes the review page ``OUT/index.html`` and logs
the run to MLflow (source, model URI and registry version, counts; the index and the page as artifacts).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from cplvad.config import Config
from cplvad.device import resolve_device
from cplvad.errors import DataError
from cplvad.extract.runner import select_videos
from cplvad.predict.clips import ClipSettings
from cplvad.predict.index import INDEX_FILE, update_index
from cplvad.predict.inputs import Input
from cplvad.predict.predictor import open_predictor
from cplvad.predict.review_page import PAGE_FILE, write_review_page
from cplvad.predict.run import PredictOptions, PredictRunner
from cplvad.storage.location import Location, open_location

DEFAULT_MODEL = "models:/cplvad@champion"
SHARD_SCHEMA = "cplvad-scoring-shard/1"


def _videos(source: str, shard: tuple[int, int] | None) -> list[Input]:
    if not source:
        raise DataError(
            "no source to score: give the s3:// prefix, folder or list file of the videos (source_uri)"
        )
    return [Input(v.uri, "video", v.name) for _, v in select_videos(source.rstrip("/"), "Normal", shard)]


def plan(source: str, num_shards: int) -> list[str]:
    """``["0/N", ..., "N-1/N"]`` with N = min(num_shards, videos); fails when the source holds no video."""
    videos = _videos(source, None)
    if not videos:
        raise DataError(f"{source} holds no video to score")
    count = max(1, min(num_shards, len(videos)))
    return [f"{k}/{count}" for k in range(count)]


def score_shard(source: str, model: str, out: str, config: Config, shard: tuple[int, int]) -> dict[str, Any]:
    """Score shard ``(k, n)`` of ``source`` into ``out`` (timelines included); returns its summary and index
    entries (``SHARD_SCHEMA``). Videos already in ``out`` for the same model and settings are skipped."""
    started = time.perf_counter()
    predictor = open_predictor(model, config, resolve_device(config.extract.device, "extract.device"))
    runner = PredictRunner(predictor, config, PredictOptions(out=out.rstrip("/"), plot=True))
    results = runner.run(_videos(source, shard))
    return {
        "schema": SHARD_SCHEMA,
        "shard": f"{shard[0]}/{shard[1]}",
        "model": predictor.describe(),
        "threshold": runner.scoring.threshold.value,
        "threshold_source": runner.scoring.threshold.source,
        "videos": len(results),
        "scored": sum(r.ok and not r.skipped for r in results),
        "skipped": sum(r.skipped for r in results),
        "failed": {r.input.name: r.error for r in results if not r.ok},
        "video_seconds": round(sum(r.video_seconds or 0.0 for r in results if not r.skipped), 3),
        "seconds": round(time.perf_counter() - started, 3),
        "entries": [r.entry for r in results if r.entry is not None],
    }


def collect(
    shards: list[dict[str, Any]], out: str, config: Config, *, source: str, model: str, track: bool = True
) -> dict[str, Any]:
    """Merge the shards' entries into ``OUT/index.json``, write ``OUT/index.html`` and (``track``) log one
    MLflow run; returns the run's record (counts, model version, run id, where the index and page are)."""
    sink = open_location(out.rstrip("/"))
    index = update_index(sink, [e for s in shards for e in s["entries"]])
    page = write_review_page(sink, f"cplvad scoring: {source}", ClipSettings.of(config.predict))
    described = shards[0]["model"] if shards else {}
    record = {
        "source": source,
        "model_uri": model,
        "model_version": described.get("version"),
        "registered_model": described.get("registered_model"),
        "weights_sha256": described.get("weights_sha256"),
        "threshold": shards[0]["threshold"] if shards else None,
        "shards": len(shards),
        "videos": sum(s["videos"] for s in shards),
        "scored": sum(s["scored"] for s in shards),
        "skipped": sum(s["skipped"] for s in shards),
        "failed": {k: v for s in shards for k, v in s["failed"].items()},
        "events": index["events"],
        "video_seconds": round(sum(s["video_seconds"] for s in shards), 3),
        "index": sink.uri(INDEX_FILE),
        "page": page,
        "run_id": None,
    }
    if track:
        record["run_id"] = _log_run(record, sink, config)
    return record


def _log_run(record: dict[str, Any], sink: Location, config: Config) -> str:
    import mlflow

    from cplvad.tracking.runs import setup_mlflow

    setup_mlflow(config)
    params = {
        k: record[k]
        for k in (
            "source",
            "model_uri",
            "model_version",
            "registered_model",
            "weights_sha256",
            "threshold",
            "shards",
        )
    }
    metrics = {k: float(record[k]) for k in ("videos", "scored", "skipped", "events", "video_seconds")}
    with (
        mlflow.start_run(run_name="scoring") as run,
        tempfile.TemporaryDirectory(prefix="cplvad-scoring-") as tmp,
    ):
        mlflow.set_tags({"cplvad.run": "scoring", "cplvad.output": sink.uri("").rstrip("/")})
        mlflow.log_params({k: "" if v is None else v for k, v in params.items()})
        mlflow.log_metrics({**metrics, "failed": float(len(record["failed"]))})
        for name in (INDEX_FILE, PAGE_FILE):
            data = sink.read_bytes(name)
            if data is not None:
                (Path(tmp) / name).write_bytes(data)
                mlflow.log_artifact(str(Path(tmp) / name))
        (Path(tmp) / "scoring.json").write_text(json.dumps(record, indent=2, default=str))
        mlflow.log_artifact(str(Path(tmp) / "scoring.json"))
        return run.info.run_id
