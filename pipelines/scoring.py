"""The scoring pipeline: a bucket of footage scored with a registered model. Source -> shard plan ->
ParallelFor over shards (one GPU task each, retried) -> index, review page and MLflow run.

Per video ``OUT/<video>.json`` (``cplvad-prediction/1``) and ``OUT/<video>.png`` (its timeline), then
``OUT/index.json`` and ``OUT/index.html`` for the whole source. With ``out_uri`` (an ``s3://`` prefix) a re-run
skips every video already scored there with the same model and settings.
"""

from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Markdown

import components as c
from pipelines import common
from pipelines.common import (
    DEFAULT_ACCELERATOR_TYPE,
    DEFAULT_SECRET,
    EXTRACTION_RETRIES,
    default_params,
    described,
    on_gpu,
    sized,
    split,
)

NAME = "cplvad-scoring"
DEFAULT_PARAMS = default_params()
DEFAULT_MODEL = "models:/cplvad@champion"


class Outputs(NamedTuple):
    index: Dataset
    report: HTML
    summary: Markdown


def scoring(
    source_uri: str,
    out_uri: str = "",
    model_uri: str = DEFAULT_MODEL,
    params: dict = DEFAULT_PARAMS,
    num_shards: int = 4,
    accelerator_type: str = DEFAULT_ACCELERATOR_TYPE,
    accelerator_count: int = 1,
    secret_name: str = DEFAULT_SECRET,
) -> Outputs:
    """Parameters:

    source_uri: s3:// prefix, folder or list file (.csv path[,label] / .txt) of the videos to score.
    out_uri: s3:// prefix for the results (resumable); empty: the pipeline's artifacts.
    model_uri: the model, e.g. models:/cplvad@champion (the registry of the pods' MLFLOW_TRACKING_URI) or a
        model directory.
    params: runtime settings (extract.workers / batch_size / device, predict.min_event_snippets, tracking);
        each step gets only these keys.
    num_shards: scoring fan-out (at most one shard per video; at most max_parallel_shards at once).
    accelerator_type / accelerator_count: GPU request of each scoring task (e.g. nvidia.com/gpu, 1).
    secret_name: Kubernetes Secret whose MLFLOW_* / AWS_* keys become environment variables (optional); the
        MLflow server is its MLFLOW_TRACKING_URI, or compile/submit --tracking-uri (set on every pod).
    """
    step = split(params, secret_name)
    plan = sized(
        c.plan_scoring(source_uri=source_uri, num_shards=num_shards, params=step.outputs["scoring"]),
        "light",
        secret_name,
    )
    plan.set_display_name("plan shards")
    # at most MAX_PARALLEL_SHARDS GPU pods at once (read when traced: --max-parallel-shards)
    # the jobs carry the params into the loop: KFP's local runner replaces every other task output that
    # enters a ParallelFor with the loop item
    with dsl.ParallelFor(plan.output, name="score-shards", parallelism=common.MAX_PARALLEL_SHARDS) as job:
        score = c.score_shard(
            params=job.params,
            source_uri=source_uri,
            model_uri=model_uri,
            out_uri=out_uri,
            shard=job.shard,
        )
        on_gpu(sized(score, "gpu", secret_name), accelerator_type, accelerator_count)
        score.set_retry(num_retries=EXTRACTION_RETRIES, backoff_duration="60s", backoff_factor=2.0)
        score.set_caching_options(False)  # writes to out_uri and resumes there
        score.set_display_name("score videos (shard)")
    collect = sized(
        c.collect_scores(
            params=step.outputs["scoring"],
            shards=dsl.Collected(score.outputs["scores"]),
            source_uri=source_uri,
            model_uri=model_uri,
            out_uri=out_uri,
        ),
        "light",
        secret_name,
    )
    collect.set_caching_options(False)  # logs to MLflow
    collect.set_display_name("index, review page, MLflow")
    return Outputs(collect.outputs["index"], collect.outputs["report"], collect.outputs["summary"])


DESCRIPTION = (
    "CPL-VAD batch scoring: the videos of a source scored with a registered model, sharded over GPU "
    "tasks, into per-video JSON and timelines, one index and a review page (resumable)."
)


def build() -> Any:
    """The pipeline, traced now: tasks take the components' image at this moment (see ``components.set_image``)."""
    return dsl.pipeline(name=NAME, description=described(DESCRIPTION))(scoring)
