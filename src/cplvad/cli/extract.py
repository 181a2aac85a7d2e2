"""Feature extraction commands: ``extract``, ``extract-merge`` and ``demo-videos``.

Exit status of ``extract`` / ``extract-merge``: 0 when every video was extracted, 1 when any failed (the
manifest says which and why), 2 for a usage, configuration or storage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cplvad.cli.main import (
    cli,
    config_flag,
    config_options,
    console,
    encoding_flags,
    options_object,
    parent_run_option,
)
from cplvad.cli.outputs import OutputFolder
from cplvad.config import Config
from cplvad.extract.options import ExtractOptions


def _report_failures(failures: dict[str, str], where: str) -> None:
    if failures:
        console.print(f"[bold red]{len(failures)} video(s) failed[/] (reasons in {where}):", highlight=False)
        for name, reason in list(failures.items())[:20]:
            console.print(f"  {name}: {reason}", highlight=False, soft_wrap=True)
        if len(failures) > 20:
            console.print(f"  ... and {len(failures) - 20} more", highlight=False)


@cli.command("extract")
@click.option(
    "--videos",
    "src",
    required=True,
    help="Folder of videos, list file (.csv path,label / .txt), or s3://bucket/prefix.",
)
@click.option(
    "--out",
    "dst",
    type=OutputFolder(s3=True, lock_by="shard"),
    required=True,
    help="Output folder or s3://bucket/prefix.",
)
@click.option(
    "--list-name",
    default="features.csv",
    show_default=True,
    help="Name of the feature list written in --out; the manifest is <stem>.extraction.json.",
)
@click.option(
    "--label",
    "default_label",
    default="Normal",
    show_default=True,
    help="Label of videos that sit directly in the source folder.",
)
@click.option(
    "--shard",
    default=None,
    metavar="K/N",
    help="Process only videos whose index modulo N is K; writes <stem>.shardK-of-N files.",
)
@click.option("--strict", is_flag=True, help="Stop at the first video that fails.")
@config_flag("--clip-model", key="clip.model", help="open_clip model name (clip.model).")
@config_flag(
    "--pretrained",
    key="clip.pretrained",
    help="CLIP weights: a local file, an open_clip tag (openai, ...), or 'none' for random weights (clip.pretrained).",
)
@config_flag(
    "--clip-config-dir",
    key="clip.config_dir",
    help="Folder of extra open_clip model configs (clip.config_dir).",
)
@config_flag(
    "--crops",
    key="extract.crops",
    type=click.Choice(["1", "10"]),
    callback=lambda _ctx, _param, value: int(value) if value else None,
    help="1 = CLIP preprocessing; 10 = the 10-crop convention.",
)
@config_flag(
    "--sampling",
    key="extract.sampling",
    help="center | mean:K (frames per snippet that are encoded and averaged).",
)
@encoding_flags
@config_options
@parent_run_option
@options_object(ExtractOptions)
def extract_cmd(src: str, dst: str, options: ExtractOptions, parent_run: str | None, config: Config) -> None:
    """Extract CLIP snippet features (one row per 16 frames) from raw videos, resumably."""
    from cplvad import preflight
    from cplvad.extract.runner import extract
    from cplvad.tracking.runs import record_extraction, stage_run

    console.print(preflight.for_extraction(src, dst, config), highlight=False)
    with stage_run("extract", parent_run) as run:
        report = extract(
            src,
            dst,
            config,
            options,
            progress=sys.stderr.isatty(),
            log=lambda msg: console.print(msg, highlight=False),
        )
        record_extraction(run, report, options.list_name)
    secs = max(report.seconds, 1e-9)
    console.print(
        f"extracted {report.extracted}, skipped {report.skipped}, failed {len(report.failed)} of {report.selected} "
        f"videos in {report.seconds:.1f} s ({report.extracted / secs:.2f} videos/s, {report.frames / secs:,.0f} frames/s); "
        f"wrote {report.sink.uri(report.names.list)} and {report.sink.uri(report.names.manifest)}",
        highlight=False,
        soft_wrap=True,
    )
    _report_failures(report.failed, report.sink.uri(report.names.manifest))
    if report.stopped_early:
        console.print("[bold red]stopped at the first failure (--strict)[/]")
    if report.failed:
        sys.exit(1)


@cli.command("extract-merge")
@click.option(
    "--out",
    "dst",
    type=OutputFolder(s3=True),
    required=True,
    help="The --out of the sharded extraction (folder or s3://).",
)
@click.option("--list-name", default="features.csv", show_default=True, help="The --list-name of the shards.")
@click.option("--shards", type=int, required=True, help="N of --shard K/N.")
def extract_merge(dst: str, list_name: str, shards: int) -> None:
    """Merge the lists and manifests of shards 0..N-1 into the final list and manifest."""
    from cplvad.extract.manifest import merge_shards, output_names
    from cplvad.storage.location import open_location

    sink = open_location(dst)
    merged = merge_shards(sink, list_name, shards)
    names = output_names(list_name)
    failures = merged.failures()
    console.print(
        f"merged {shards} shards: {len(merged.videos) - len(failures)} videos in {sink.uri(names.list)}, "
        f"{len(failures)} failed; manifest {sink.uri(names.manifest)}",
        highlight=False,
    )
    _report_failures(failures, sink.uri(names.manifest))
    if failures:
        sys.exit(1)


@cli.command("demo-videos")
@click.option("--out", required=True, type=OutputFolder(), help="Folder to write the videos into.")
@click.option("--seed", type=int, default=None, help="Random seed (default: demo.seed).")
@click.option(
    "--features-dir",
    default="features",
    show_default=True,
    help="Where dataset.yaml expects the extracted features, relative to --out (e.g. ../features).",
)
@config_options
def demo_videos(out: str, seed: int | None, features_dir: str, config: Config) -> None:
    """Write small synthetic videos with anomalies, annotations and a dataset.yaml (no download)."""
    from cplvad.extract.demo_videos import write_demo_videos

    cfg = config.demo if seed is None else config.demo.model_copy(update={"seed": seed})
    manifest = write_demo_videos(out, cfg, features_dir)
    feats = Path(out) / features_dir
    console.print(
        f"wrote {manifest} and the videos it describes; extract their features with\n"
        f"  cplvad extract --videos {out}/train_videos.csv --out {feats} --list-name train.csv\n"
        f"  cplvad extract --videos {out}/test_videos.csv --out {feats} --list-name test.csv",
        highlight=False,
        soft_wrap=True,
    )
