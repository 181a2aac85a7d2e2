"""Batch-scoring components: plan the shards of a source, score each shard with a registered model, collect
the index, the review page and the MLflow run (``cplvad.predict.scoring_job``)."""

from typing import NamedTuple, Optional

from kfp.dsl import HTML, Dataset, Input, Markdown, Output

from components.image import component


@component
def plan_scoring(source_uri: str, num_shards: int, params: dict) -> list:
    """``[{"shard": "0/N", "params": params}, ...]``: N = min(num_shards, videos in ``source_uri``); each job
    carries the scoring's params into the loop (``params``: the ``scoring`` keys of ``split_params``)."""
    from cplvad.predict.scoring_job import plan

    shards = plan(source_uri, num_shards)
    print(f"{source_uri}: {len(shards)} shard(s)")
    return [{"shard": shard, "params": params} for shard in shards]


@component
def score_shard(
    params: dict,
    source_uri: str,
    model_uri: str,
    out_uri: str,
    shard: str,
    scores: Output[Dataset],
    overrides: Optional[list] = None,
):
    """Score every N-th video of ``source_uri`` (shard ``"K/N"``) into ``out_uri`` (empty: this artifact):
    ``<video>.json`` and ``<video>.png`` each; videos already there for the same model are skipped.
    ``scores/shard.json`` holds the shard's counts and index entries. The registry is the pod's
    ``MLFLOW_TRACKING_URI``."""
    import json
    from pathlib import Path

    from cplvad.config import apply_overrides, config_from_dict
    from cplvad.predict.scoring_job import score_shard as run

    config = config_from_dict(
        apply_overrides(dict(params), overrides or []), "the pipeline parameter 'params'"
    )
    k, n = (int(x) for x in shard.split("/"))
    result = run(source_uri, model_uri, out_uri or scores.path, config, (k, n))
    Path(scores.path).mkdir(parents=True, exist_ok=True)
    (Path(scores.path) / "shard.json").write_text(json.dumps(result, indent=1))
    scores.metadata.update({k: result[k] for k in ("shard", "videos", "scored", "skipped")})
    print(
        f"shard {shard}: scored {result['scored']}, skipped {result['skipped']}, failed {len(result['failed'])} "
        f"of {result['videos']} videos with model {result['model']['version']}"
    )


@component
def collect_scores(
    params: dict,
    shards: Input[list[Dataset]],
    source_uri: str,
    model_uri: str,
    out_uri: str,
    index: Output[Dataset],
    report: Output[HTML],
    summary: Output[Markdown],
    overrides: Optional[list] = None,
) -> NamedTuple("Scoring", [("run_id", str), ("model_version", str)]):
    """``OUT/index.json`` over every shard, the review page ``OUT/index.html`` (also this step's HTML
    output) and one MLflow run (source, model URI and version, counts). Without ``out_uri`` the shards'
    outputs are gathered into ``index``. Fails when any video failed."""
    import json
    import shutil
    from pathlib import Path

    from cplvad.config import apply_overrides, config_from_dict
    from cplvad.predict.scoring_job import collect
    from cplvad.storage.location import open_location

    config = config_from_dict(
        apply_overrides(dict(params), overrides or []), "the pipeline parameter 'params'"
    )
    parts = [json.loads((Path(s.path) / "shard.json").read_text()) for s in shards]
    out = out_uri or index.path
    if not out_uri:
        for s in shards:
            shutil.copytree(
                s.path, index.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("shard.json")
            )
    record = collect(parts, out, config, source=source_uri, model=model_uri)
    Path(index.path).mkdir(parents=True, exist_ok=True)
    (Path(index.path) / "scoring.json").write_text(json.dumps(record, indent=1))
    Path(report.path).write_bytes(open_location(out).read_bytes("index.html"))
    Path(summary.path).write_text(
        f"# Scoring of {source_uri}\n\n- model `{model_uri}` version {record['model_version']}\n"
        f"- {record['scored']} scored, {record['skipped']} skipped (done before), {len(record['failed'])} failed "
        f"of {record['videos']} videos; {record['events']} events\n- index `{record['index']}`\n"
        f"- MLflow run `{record['run_id']}`\n"
    )
    index.metadata.update({k: record[k] for k in ("videos", "scored", "skipped", "events", "model_version")})
    print(json.dumps({k: v for k, v in record.items() if k != "failed"}))
    if record["failed"]:
        reasons = "; ".join(f"{k}: {v}" for k, v in list(record["failed"].items())[:10])
        raise RuntimeError(f"{len(record['failed'])} video(s) failed ({reasons}); see {record['index']}")
    return (record["run_id"] or "", str(record["model_version"] or ""))
