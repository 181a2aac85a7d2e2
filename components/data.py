"""Data components: the source (demo videos or a dataset on S3 / a folder), the shard plan, sharded CLIP
feature extraction (``cplvad extract --shard K/N``) and the merge (``cplvad extract-merge``) into one
self-contained ``Dataset`` artifact.

Source layout (what ``cplvad demo-videos`` writes; ``source_uri`` = a folder or ``s3://bucket/prefix``)::

    train_videos.csv, test_videos.csv   video lists (``path,label``; paths relative to the list or s3://)
    dataset.yaml                        the dataset manifest (classes, annotations, ...)
    <annotation files named in dataset.yaml>

The merged ``dataset`` artifact holds ``dataset.yaml`` (lists at ``features/train.csv`` and
``features/test.csv``), the annotation files and ``features/`` (the .npy files, both lists and both
extraction manifests), so every later step needs this one artifact only.
"""

from typing import Optional

from kfp.dsl import Dataset, Input, Output

from components.image import component


@component
def prepare_data(params: dict, source_uri: str, data: Output[Dataset], overrides: Optional[list] = None):
    """The dataset metadata (and, for the demo, the videos): ``source_uri`` empty = generate the built-in
    demo videos (sizes from ``params.demo``); else copy ``dataset.yaml`` and its annotation files from
    ``source_uri`` (the videos stay where they are and are read by the extraction)."""
    from pathlib import Path, PurePosixPath

    import yaml

    from cplvad.config import apply_overrides, config_from_dict
    from cplvad.errors import DataError
    from cplvad.extract.demo_videos import write_demo_videos
    from cplvad.extract.storage import open_sink

    config = config_from_dict(apply_overrides(dict(params), overrides or []), "the pipeline parameter 'params'")
    out = Path(data.path)
    if not source_uri:
        write_demo_videos(out, config.demo, features_dir="features")
        data.metadata.update({"source": "cplvad demo-videos", "demo_seed": config.demo.seed})
        return
    source = open_sink(source_uri.rstrip("/"))
    raw = source.read_bytes("dataset.yaml")
    if raw is None:
        raise DataError(f"{source.uri('dataset.yaml')} does not exist: a source needs dataset.yaml beside its video lists")
    manifest = yaml.safe_load(raw)
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
    manifest.update(train_list="features/train.csv", test_list="features/test.csv")
    manifest.pop("features_root", None)
    (out / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    data.metadata.update({"source": source_uri, "name": manifest.get("name")})


@component
def plan_shards(data: Input[Dataset], source_uri: str, num_shards: int) -> list:
    """Check both video lists (unique names, usable labels) and plan ``N = min(num_shards, videos)`` shards:
    ``["0/N", "1/N", ...]`` (``cplvad extract --shard K/N``)."""
    from cplvad.extract.runner import select_videos

    root = source_uri.rstrip("/") or data.path
    sizes = [len(select_videos(f"{root}/{name}", "Normal", None)) for name in ("train_videos.csv", "test_videos.csv")]
    count = max(1, min([num_shards, *sizes]))
    print(f"{sizes[0]} training and {sizes[1]} test videos in {count} shard(s)")
    return [f"{k}/{count}" for k in range(count)]


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
    """CLIP snippet features of shard ``shard`` (``"K/N"``) of both video lists (``cplvad extract --shard
    K/N``) into the output artifact, or into ``features_uri`` (S3) when given, where a retried or re-run
    shard resumes from its manifest."""
    import json
    from pathlib import Path

    from cplvad.config import apply_overrides, config_from_dict
    from cplvad.extract.runner import extract

    config = config_from_dict(apply_overrides(dict(params), overrides or []), "the pipeline parameter 'params'")
    index, num_shards = (int(x) for x in shard.split("/"))
    root = source_uri.rstrip("/") or data.path
    dst = features_uri.rstrip("/") or features.path
    Path(features.path).mkdir(parents=True, exist_ok=True)
    failed: dict = {}
    counts = {}
    for split, video_list in (("train", "train_videos.csv"), ("test", "test_videos.csv")):
        report = extract(f"{root}/{video_list}", dst, config, list_name=f"{split}.csv", shard=(index, num_shards),
                         progress=False)
        print(f"{split} shard {shard}: extracted {report.extracted}, skipped {report.skipped}, "
              f"failed {len(report.failed)} of {report.selected} videos in {report.seconds:.1f} s; "
              f"manifest {report.sink.uri(report.names.manifest)}")
        failed.update(report.failed)
        counts[split] = report.selected
    if features_uri:
        (Path(features.path) / "location.json").write_text(json.dumps({"features_uri": dst, "shard": shard}))
    features.metadata.update({"shard": shard, "location": dst, **counts})
    if failed:
        reasons = "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:10])
        raise RuntimeError(f"{len(failed)} video(s) of shard {shard} failed ({reasons}); "
                           "see the shard's extraction manifest")


@component
def merge_features(
    data: Input[Dataset],
    shards: Input[list[Dataset]],
    shard_plan: list,
    features_uri: str,
    dataset: Output[Dataset],
):
    """Merge the shards' lists and manifests (``cplvad extract-merge``) into one ``Dataset`` artifact:
    ``dataset.yaml``, annotations and ``features/``. ``shard_plan``: the output of ``plan_shards``.
    Fails if any video failed."""
    import shutil
    from pathlib import Path

    from cplvad.data.dataset import load_dataset
    from cplvad.extract.manifest import merge_shards
    from cplvad.extract.storage import open_sink

    num_shards = len(shard_plan)
    out = Path(dataset.path)
    features = out / "features"
    features.mkdir(parents=True, exist_ok=True)
    for item in Path(data.path).iterdir():  # manifest, annotations, video lists; not the demo's videos/
        if item.is_file():
            shutil.copy2(item, out / item.name)
        elif item.name != "videos":
            shutil.copytree(item, out / item.name, dirs_exist_ok=True)
    if features_uri:
        sink = open_sink(features_uri.rstrip("/"))
    else:
        for part in shards:
            shutil.copytree(part.path, features, dirs_exist_ok=True)
        sink = open_sink(str(features))
    failures = {}
    for split in ("train", "test"):
        failures.update(merge_shards(sink, f"{split}.csv", num_shards).failures())
    if features_uri:  # materialise the shared prefix as this artifact (the training steps read local files)
        for rel in sink.sizes():
            target = features / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(sink.read_bytes(rel))
    if failures:
        reasons = "; ".join(f"{k}: {v}" for k, v in list(failures.items())[:10])
        raise RuntimeError(f"{len(failures)} video(s) failed extraction ({reasons})")
    loaded = load_dataset(out / "dataset.yaml")
    loaded.train.samples()  # every listed feature file is there
    loaded.test.samples()
    summary = {"name": loaded.name, "classes": len(loaded.classes.names), "train_videos": len(loaded.train),
               "test_videos": len(loaded.test), "shards": num_shards}
    print(f"dataset {summary}")
    dataset.metadata.update(summary)
