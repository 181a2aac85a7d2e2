"""Data components: which data the pipeline runs on (``plan_data``: extract videos, or read features that are
there), the published features' dataset folder (``resolve_data``), and for videos the metadata (demo videos,
a manifest with video lists, or a source folder on S3), the shard plan, sharded CLIP feature extraction
(``cplvad extract --shard K/N``) and the merge (``cplvad extract-merge``) into one self-contained ``Dataset``
artifact (``cplvad.extract.dataset_folder`` describes the layouts).
"""

from typing import Optional

from kfp.dsl import Dataset, Input, Output

from components.image import component

EXTRACT = "extract"
"""``plan_data``'s answer when videos are extracted first (its body returns the literal: a component body
sees no module names); otherwise ``"features"``: read where they are."""


@component
def plan_data(params: dict, source_uri: str) -> str:
    """``"extract"`` for the demo, a manifest with video lists (``data.train_videos``) or ``source_uri``;
    ``"features"`` for a built-in benchmark or a manifest's own lists. Checks the choice (the files it names
    are there) before any work. ``params``: the ``data`` section."""
    from cplvad.extract.dataset_folder import needs_extraction
    from cplvad.pipeline_step import step_config

    config = step_config(params)
    return "extract" if needs_extraction(config.data, source_uri) else "features"


@component
def resolve_data(params: dict, dataset: Output[Dataset]):
    """The dataset folder of features that are already there (``cplvad datasets prepare``: a built-in
    benchmark's manifest over its published release, or a manifest's own lists), checked: ``dataset.yaml``,
    lists, annotations. ``params``: the ``data`` section."""
    from cplvad.data import load_dataset
    from cplvad.pipeline_step import step_config
    from cplvad.workflow.data import prepare_data

    config = step_config(params)
    loaded = load_dataset(prepare_data(config, dataset.path, progress=False))
    dataset.metadata.update(
        {
            "source": config.data.dataset,
            "name": loaded.name,
            "train_videos": len(loaded.train),
            "test_videos": len(loaded.test),
        }
    )


@component
def prepare_data(
    params: dict, source_uri: str, data: Output[Dataset], overrides: Optional[list] = None
) -> dict:
    """The metadata of the videos to extract, and where they are (``{split: source}``, handed to the shard
    plan): the built-in demo videos (generated here, sizes from ``params.demo``), a manifest with
    ``data.train_videos`` / ``data.test_videos`` (annotation files copied), or ``source_uri``
    (``dataset.yaml`` and its annotation files copied; the videos stay where they are)."""
    from cplvad.extract.dataset_folder import prepare_videos
    from cplvad.pipeline_step import step_config

    config = step_config(params, overrides)
    summary = prepare_videos(config, data.path, source_uri)
    data.metadata.update(summary)
    return summary["videos"]


@component
def plan_shards(data: Input[Dataset], videos: dict, num_shards: int, params: dict) -> list:
    """Check both video lists and plan ``min(num_shards, videos)`` shards, one job each:
    ``[{"shard": "0/N", "params": params, "videos": videos}, ...]`` (``params``: the extraction's keys)."""
    from cplvad.extract.dataset_folder import plan_shards as plan
    from cplvad.extract.dataset_folder import resolve_videos

    shards = plan(resolve_videos(videos, data.path), num_shards)
    return [{"shard": shard, "params": params, "videos": videos} for shard in shards]


@component
def extract_features(
    data: Input[Dataset],
    params: dict,
    videos: dict,
    features_uri: str,
    shard: str,
    features: Output[Dataset],
    overrides: Optional[list] = None,
):
    """CLIP snippet features of shard ``shard`` (``"K/N"``) of both splits' ``videos`` into the output
    artifact, or into ``features_uri`` (S3) when given, where a retried or re-run shard resumes from its
    manifest."""
    from pathlib import Path

    from cplvad import preflight
    from cplvad.extract.dataset_folder import extract_shard, resolve_videos
    from cplvad.pipeline_step import step_config

    config = step_config(params, overrides)
    Path(features.path).mkdir(parents=True, exist_ok=True)
    dst = features_uri.rstrip("/") or features.path
    videos = resolve_videos(videos, data.path)
    for src in videos.values():
        print(preflight.for_extraction(src, dst, config))
    counts = extract_shard(videos, dst, config, shard)
    features.metadata.update({"shard": shard, "location": dst, **counts})


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

    summary = merge_dataset(
        data.path,
        dataset.path,
        shards=len(shard_plan),
        shard_dirs=[Path(part.path) for part in shards],
        features_uri=features_uri,
    )
    print(f"dataset {summary}")
    dataset.metadata.update(summary)
