"""The dataset folders a pipeline hands from step to step, from a video source to one self-contained dataset.

A source (a folder or ``s3://`` prefix, the layout ``cplvad demo-videos`` writes) holds the video lists
``train_videos.csv`` / ``test_videos.csv`` (``path,label``), ``dataset.yaml`` and its annotation files. The
steps: copy the source's metadata (:func:`copy_source_metadata`), split both lists into shards
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

from cplvad.config import Config
from cplvad.data.dataset import load_dataset
from cplvad.errors import DataError
from cplvad.extract.manifest import merge_shards
from cplvad.extract.storage import open_sink

VIDEO_LISTS = {"train": "train_videos.csv", "test": "test_videos.csv"}
"""The source's video list of each split."""
FEATURES_DIR = "features"
SHOWN_FAILURES = 10


def copy_source_metadata(source_uri: str, out: str | Path) -> dict[str, Any]:
    """Copy ``dataset.yaml`` and its annotation files from the source to ``out`` (the videos stay where they
    are, read by the extraction), pointing the manifest at the lists the merge writes; returns its name."""
    source = open_sink(source_uri.rstrip("/"))
    raw = source.read_bytes("dataset.yaml")
    if raw is None:
        raise DataError(f"{source.uri('dataset.yaml')} does not exist: a source needs dataset.yaml beside its video lists")
    manifest = yaml.safe_load(raw)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for key in ("annotations", "segment_annotations"):
        rel = manifest.get(key)
        if not rel:
            continue
        if PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
            raise DataError(f"dataset.yaml {key}: {rel!r} must be a path relative to dataset.yaml inside the source")
        content = source.read_bytes(rel)
        if content is None:
            raise DataError(f"{source.uri(rel)} (dataset.yaml {key}) does not exist")
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(content)
    manifest.update(train_list=f"{FEATURES_DIR}/train.csv", test_list=f"{FEATURES_DIR}/test.csv")
    manifest.pop("features_root", None)
    (out / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return {"source": source_uri, "name": manifest.get("name")}


def plan_shards(root: str, num_shards: int) -> list[str]:
    """Check both video lists of ``root`` (unique names, usable labels) and plan
    ``N = min(num_shards, videos)`` shards: ``["0/N", "1/N", ...]`` (``cplvad extract --shard K/N``)."""
    from cplvad.extract.runner import select_videos

    sizes = [len(select_videos(f"{root.rstrip('/')}/{name}", "Normal", None)) for name in VIDEO_LISTS.values()]
    count = max(1, min([num_shards, *sizes]))
    print(f"{sizes[0]} training and {sizes[1]} test videos in {count} shard(s)")
    return [f"{k}/{count}" for k in range(count)]


def extract_shard(root: str, dst: str, config: Config, shard: str) -> dict[str, Any]:
    """Extract shard ``"K/N"`` of both video lists of ``root`` into ``dst`` (a folder or ``s3://`` prefix,
    where a retried shard resumes); the videos per split. Raises DataError when a video failed."""
    from cplvad.extract.runner import extract

    index, num_shards = (int(x) for x in shard.split("/"))
    failed: dict[str, str] = {}
    counts = {}
    for split, video_list in VIDEO_LISTS.items():
        report = extract(f"{root.rstrip('/')}/{video_list}", dst, config, list_name=f"{split}.csv",
                         shard=(index, num_shards), progress=False)
        print(f"{split} shard {shard}: extracted {report.extracted}, skipped {report.skipped}, "
              f"failed {len(report.failed)} of {report.selected} videos in {report.seconds:.1f} s; "
              f"manifest {report.sink.uri(report.names.manifest)}")
        failed.update(report.failed)
        counts[split] = report.selected
    if failed:
        raise DataError(f"{len(failed)} video(s) of shard {shard} failed ({_reasons(failed)}); "
                        "see the shard's extraction manifest")
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
    sink = open_sink(features_uri.rstrip("/") or str(features))
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
    return {"name": dataset.name, "classes": len(dataset.classes.names), "train_videos": len(dataset.train),
            "test_videos": len(dataset.test), "shards": shards}


def _reasons(failures: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in list(failures.items())[:SHOWN_FAILURES])
