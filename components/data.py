"""Data components: the source (demo videos or a dataset on S3 / a folder), the shard plan, sharded CLIP
feature extraction (``cplvad extract --shard K/N``) and the merge (``cplvad extract-merge``) into one
self-contained ``Dataset`` artifact (``cplvad.extract.dataset_folder`` describes the layouts).
"""

from typing import Optional

from kfp.dsl import Dataset, Input, Output

from components.image import component


@component
def prepare_data(params: dict, source_uri: str, data: Output[Dataset], overrides: Optional[list] = None):
    """The dataset metadata (and, for the demo, the videos): ``source_uri`` empty = generate the built-in
    demo videos (sizes from ``params.demo``); else copy ``dataset.yaml`` and its annotation files from
    ``source_uri`` (the videos stay where they are and are read by the extraction)."""
    from cplvad.config import config_from_params
    from cplvad.extract.dataset_folder import FEATURES_DIR, copy_source_metadata
    from cplvad.extract.demo_videos import write_demo_videos

    config = config_from_params(params, overrides or [], "the pipeline parameter 'params'")
    if source_uri:
        data.metadata.update(copy_source_metadata(source_uri, data.path))
    else:
        write_demo_videos(data.path, config.demo, features_dir=FEATURES_DIR)
        data.metadata.update({"source": "cplvad demo-videos", "demo_seed": config.demo.seed})


@component
def plan_shards(data: Input[Dataset], source_uri: str, num_shards: int, params: dict) -> list:
    """Check both video lists and plan ``min(num_shards, videos)`` shards, one job each:
    ``[{"shard": "0/N", "params": params}, ...]`` (``params``: the extraction's keys)."""
    from cplvad.extract.dataset_folder import plan_shards as plan

    return [{"shard": shard, "params": params} for shard in plan(source_uri or data.path, num_shards)]


@component
def extract_features(
    data: Input[Dataset],
    params: dict,
    source_uri: str,
    features_uri: str,
    shard: str,
    features: Output[Dataset],
    overrides: Optional[list] = None,
):
    """CLIP snippet features of shard ``shard`` (``"K/N"``) of both video lists into the output artifact, or
    into ``features_uri`` (S3) when given, where a retried or re-run shard resumes from its manifest."""
    from pathlib import Path

    from cplvad.config import config_from_params
    from cplvad.extract.dataset_folder import extract_shard

    config = config_from_params(params, overrides or [], "the pipeline parameter 'params'")
    Path(features.path).mkdir(parents=True, exist_ok=True)
    dst = features_uri.rstrip("/") or features.path
    features.metadata.update({"shard": shard, "location": dst, **extract_shard(source_uri or data.path, dst, config, shard)})


@component
def merge_features(
    data: Input[Dataset],
    shards: Input[list[Dataset]],
    shard_plan: list,
    features_uri: str,
    dataset: Output[Dataset],
):
    """Merge the shards' lists and manifests into one ``Dataset`` artifact: ``dataset.yaml``, annotations
    and ``features/``. ``shard_plan``: the jobs of ``plan_shards``. Fails if any video failed."""
    from pathlib import Path

    from cplvad.extract.dataset_folder import merge_dataset

    summary = merge_dataset(data.path, dataset.path, shards=len(shard_plan),
                            shard_dirs=[Path(part.path) for part in shards], features_uri=features_uri)
    print(f"dataset {summary}")
    dataset.metadata.update(summary)
