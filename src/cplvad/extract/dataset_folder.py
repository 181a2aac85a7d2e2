"""The dataset folders a pipeline hands from step to step, from the ``data`` choice to one self-contained dataset.

A sharded pipeline (Kubeflow) first asks whether the data must be extracted (:func:`needs_extraction`):
a built-in benchmark, or a manifest with its own lists, is read where it is (the pipeline's data step
writes its dataset folder); the demo, a manifest with video lists, or a source folder (an ``s3://``
prefix in the layout ``cplvad demo-videos`` writes: ``train_videos.csv`` / ``test_videos.csv``
(``path,label``), ``dataset.yaml`` and its annotation files) are extracted. The extraction steps: write
the metadata and say where the videos are (:func:`prepare_videos`), split both video lists into shards
(:func:`plan_shards`), extract each shard (:func:`extract_shard`), then merge the shards into one folder
(:func:`merge_dataset`): ``dataset.yaml`` (lists at ``features/train.csv`` and ``features/test.csv``), the
annotation files and ``features/`` (the .npy files, both lists, both extraction manifests), so every later
step needs that one folder only.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from cplvad.config import Config, DataConfig, dataset_kind
from cplvad.data.dataset import load_dataset
from cplvad.data.selection import MANIFEST_FILE, DataPlan, plan_data, read_manifest, write_manifest
from cplvad.errors import ConfigError, DataError
from cplvad.extract.manifest import merge_shards
from cplvad.io import copy_file
from cplvad.storage.location import is_url, open_location

VIDEO_LISTS = {"train": "train_videos.csv", "test": "test_videos.csv"}
"""The source's video list of each split."""
FEATURES_DIR = "features"
SHOWN_FAILURES = 10


def check_source(data: DataConfig, source_uri: str) -> None:
    """A source folder stands in for the demo only: with any other ``data.dataset`` the choice is ambiguous."""
    if source_uri and dataset_kind(data.dataset) != "demo":
        raise ConfigError(
            f"source_uri {source_uri} and data.dataset={data.dataset} both choose the data; give one: clear "
            "source_uri, or leave data.dataset at demo (a source with videos is also data.dataset=<manifest> "
            "with data.train_videos and data.test_videos)"
        )


def needs_extraction(data: DataConfig, source_uri: str = "") -> bool:
    """Whether the pipeline extracts videos for this choice (the demo, a source, a manifest with video lists)
    or reads features that are already there (a built-in benchmark, a manifest's own lists). Checks the
    choice first (``plan_data``: the files it names are there), so a wrong path fails before any work."""
    check_source(data, source_uri)
    return bool(source_uri) or dataset_kind(data.dataset) == "demo" or plan_data(data).needs_extraction


def prepare_videos(config: Config, out: str | Path, source_uri: str = "") -> dict[str, Any]:
    """Write into ``out`` what the merged dataset needs beside the features (``dataset.yaml`` pointing at
    ``features/train.csv`` and ``features/test.csv``, the annotation files; the demo's videos) and say where
    the videos of each split are: ``{"videos": {split: source}, ...}`` (a relative source is inside ``out``,
    see :func:`resolve_videos`)."""
    from cplvad.extract.demo_videos import write_demo_videos

    check_source(config.data, source_uri)
    if source_uri:
        root = source_uri.rstrip("/") if is_url(source_uri) else str(Path(source_uri).resolve())
        return {
            **copy_source_metadata(root, out),
            "videos": {k: f"{root}/{v}" for k, v in VIDEO_LISTS.items()},
        }
    if dataset_kind(config.data.dataset) == "demo":
        write_demo_videos(out, config.demo, features_dir=FEATURES_DIR)
        return {"source": "cplvad demo-videos", "demo_seed": config.demo.seed, "videos": dict(VIDEO_LISTS)}
    plan = plan_data(config.data)
    if not plan.needs_extraction:
        raise ConfigError(
            f"data.dataset={plan.dataset} names no videos to extract (data.train_videos, "
            "data.test_videos): its features are read where they are"
        )
    Path(out).mkdir(parents=True, exist_ok=True)
    write_extracted_manifest(plan, Path(out))
    videos = {k: v if is_url(v) else str(Path(v).resolve()) for k, v in plan.videos.items()}
    return {"source": str(Path(plan.dataset).resolve()), "videos": videos}


def write_extracted_manifest(plan: DataPlan, staged: Path) -> None:
    """Beside ``staged/features/`` (the extraction's ``train.csv`` and ``test.csv``): the plan's manifest with
    its lists replaced by those, and its annotation files copied in. A sharded extraction (Kubeflow) calls
    this after merging its shards into that folder."""
    source = plan.manifest
    assert source is not None
    raw = read_manifest(source)
    for key in ("annotations", "segment_annotations"):
        if raw.get(key):
            path = source.parent / str(raw[key])
            if not path.is_file():
                raise DataError(f"{source}: {key} file {path} does not exist")
            copied = f"{key}{path.suffix}"
            copy_file(path, staged / copied)
            raw[key] = copied
    for key in ("features_root", "train_features_root", "test_features_root"):
        raw.pop(key, None)
    raw.update(train_list=f"{FEATURES_DIR}/train.csv", test_list=f"{FEATURES_DIR}/test.csv")
    write_manifest(staged / MANIFEST_FILE, raw, f"from {source} and the extracted features")


def resolve_videos(videos: dict[str, str], folder: str | Path) -> dict[str, str]:
    """The video source of each split, a relative one taken inside ``folder`` (where each pod has the
    prepared folder: the demo's videos travel in it)."""
    return {k: v if is_url(v) else str(Path(folder) / v) for k, v in videos.items()}


def copy_source_metadata(source_uri: str, out: str | Path) -> dict[str, Any]:
    """Copy ``dataset.yaml`` and its annotation files from the source to ``out`` (the videos stay where they
    are, read by the extraction), pointing the manifest at the lists the merge writes; returns its name."""
    source = open_location(source_uri.rstrip("/"))
    raw = source.read_bytes("dataset.yaml")
    if raw is None:
        raise DataError(
            f"{source.uri('dataset.yaml')} does not exist: a source needs dataset.yaml beside its video lists"
        )
    manifest = yaml.safe_load(raw)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for key in ("annotations", "segment_annotations"):
        rel = manifest.get(key)
        if not rel:
            continue
        if PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
            raise DataError(
                f"dataset.yaml {key}: {rel!r} must be a path relative to dataset.yaml inside the source"
            )
        content = source.read_bytes(rel)
        if content is None:
            raise DataError(f"{source.uri(rel)} (dataset.yaml {key}) does not exist")
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(content)
    manifest.update(train_list=f"{FEATURES_DIR}/train.csv", test_list=f"{FEATURES_DIR}/test.csv")
    manifest.pop("features_root", None)
    (out / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return {"source": source_uri, "name": manifest.get("name")}


def plan_shards(videos: dict[str, str], num_shards: int) -> list[str]:
    """Check the videos of both splits (``{split: folder, list or s3:// source}``: unique names, usable labels)
    and plan ``N = min(num_shards, videos)`` shards: ``["0/N", "1/N", ...]`` (``cplvad extract --shard K/N``)."""
    from cplvad.extract.runner import select_videos

    sizes = [len(select_videos(videos[split], "Normal", None)) for split in VIDEO_LISTS]
    count = max(1, min([num_shards, *sizes]))
    print(f"{sizes[0]} training and {sizes[1]} test videos in {count} shard(s)")
    return [f"{k}/{count}" for k in range(count)]


def extract_shard(videos: dict[str, str], dst: str, config: Config, shard: str) -> dict[str, Any]:
    """Extract shard ``"K/N"`` of the videos of both splits into ``dst`` (a folder or ``s3://`` prefix, where
    a retried shard resumes); the videos per split. Raises DataError when a video failed."""
    from cplvad.extract.options import ExtractOptions
    from cplvad.extract.runner import extract

    failed: dict[str, str] = {}
    counts = {}
    for split in VIDEO_LISTS:
        options = ExtractOptions(list_name=f"{split}.csv", shard=shard)
        report = extract(videos[split], dst, config, options, progress=False)
        print(
            f"{split} shard {shard}: extracted {report.extracted}, skipped {report.skipped}, "
            f"failed {len(report.failed)} of {report.selected} videos in {report.seconds:.1f} s; "
            f"manifest {report.sink.uri(report.names.manifest)}"
        )
        failed.update(report.failed)
        counts[split] = report.selected
    if failed:
        raise DataError(
            f"{len(failed)} video(s) of shard {shard} failed ({_reasons(failed)}); "
            "see the shard's extraction manifest"
        )
    return counts


def merge_dataset(
    source: str | Path, out: str | Path, *, shards: int, shard_dirs: list[Path], features_uri: str = ""
) -> dict[str, Any]:
    """Assemble the merged dataset folder ``out``: the source metadata (not the demo's ``videos/``), the
    shards' lists and manifests merged (``cplvad extract-merge``), and the features, copied from the shard
    folders or, with ``features_uri``, from that shared prefix. Checks that every listed feature file is
    there; returns a summary. Raises DataError when any video failed extraction."""
    out = Path(out)
    features = out / FEATURES_DIR
    features.mkdir(parents=True, exist_ok=True)
    for item in Path(source).iterdir():  # manifest, annotations, video lists
        if item.is_file():
            shutil.copy2(item, out / item.name)
        elif item.name != "videos":
            shutil.copytree(item, out / item.name, dirs_exist_ok=True)
    if not features_uri:
        for part in shard_dirs:
            shutil.copytree(part, features, dirs_exist_ok=True)
    sink = open_location(features_uri.rstrip("/") or str(features))
    failures: dict[str, str] = {}
    for split in VIDEO_LISTS:
        failures.update(merge_shards(sink, f"{split}.csv", shards).failures())
    if features_uri:  # materialise the shared prefix here: the training steps read local files
        for rel in sink.sizes():
            target = features / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(sink.read_bytes(rel))
    if failures:
        raise DataError(f"{len(failures)} video(s) failed extraction ({_reasons(failures)})")
    dataset = load_dataset(out / "dataset.yaml")
    dataset.train.samples()  # every listed feature file is there
    dataset.test.samples()
    return {
        "name": dataset.name,
        "classes": len(dataset.classes.names),
        "train_videos": len(dataset.train),
        "test_videos": len(dataset.test),
        "shards": shards,
    }


def _reasons(failures: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in list(failures.items())[:SHOWN_FAILURES])
