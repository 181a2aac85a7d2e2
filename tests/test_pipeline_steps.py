"""The library functions the Kubeflow components call, outside a pipeline: params split per step, the data
plan and its two branches (the published features' dataset; source metadata, shard plan, shard extraction,
merge), HTML pages and the ablation rows."""

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config
from kfp.dsl import Dataset

import components as c
from cplvad.config import DataConfig, config_from_params, select_keys
from cplvad.data import load_dataset
from cplvad.data.benchmarks import load_benchmark
from cplvad.errors import ConfigError, DataError
from cplvad.eval.html_report import ablation_page, evaluation_page
from cplvad.extract.dataset_folder import (
    VIDEO_LISTS,
    copy_source_metadata,
    extract_shard,
    merge_dataset,
    needs_extraction,
    plan_shards,
    prepare_videos,
    resolve_videos,
)
from cplvad.extract.demo_videos import write_demo_videos
from cplvad.workflow.ablation import GRID, grid_rows


def test_select_keys_takes_sections_single_keys_and_top_level_values():
    params = tiny_config().to_dict()
    part = select_keys(
        params, ["seed", "model", "predict.false_alarm_rate", "train.device", "nothere", "eval.nope"]
    )
    assert part == {
        "seed": 0,
        "model": params["model"],
        "predict": {"false_alarm_rate": 0.01},
        "train": {"device": "auto"},
    }
    part["model"]["width"] = 16
    assert params["model"]["width"] == 32  # a copy
    assert (
        config_from_params(part).model.width == 16 and config_from_params(part).train.epochs == 20
    )  # defaults


def test_config_from_params_applies_overrides_without_changing_the_mapping():
    params = tiny_config().to_dict()
    config = config_from_params(params, ["car.enabled=false"], "the pipeline parameter 'params'")
    assert not config.car.enabled and params["car"]["enabled"] is True
    with pytest.raises(ConfigError, match="the pipeline parameter 'params' with train.epochs=0"):
        config_from_params(params, ["train.epochs=0"], "the pipeline parameter 'params'")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Tiny demo videos in the source layout (lists, dataset.yaml, annotations)."""
    out = tmp_path_factory.mktemp("source") / "videos"
    write_demo_videos(out, tiny_config().demo, features_dir="features")
    return out


def test_source_metadata_is_copied_and_pointed_at_the_merged_lists(source, tmp_path):
    summary = copy_source_metadata(str(source), tmp_path / "meta")
    manifest = yaml.safe_load((tmp_path / "meta" / "dataset.yaml").read_text())
    assert summary == {"source": str(source), "name": "cplvad-demo-videos"}
    assert (manifest["train_list"], manifest["test_list"]) == ("features/train.csv", "features/test.csv")
    assert (tmp_path / "meta" / manifest["annotations"]).read_text() == (
        source / manifest["annotations"]
    ).read_text()
    assert not (tmp_path / "meta" / "videos").exists()
    bad = tmp_path / "bad"
    shutil.copytree(source, bad)
    (bad / "dataset.yaml").write_text(yaml.safe_dump({**manifest, "annotations": "../secrets.txt"}))
    with pytest.raises(DataError, match="must be a path relative to dataset.yaml inside the source"):
        copy_source_metadata(str(bad), tmp_path / "meta2")
    with pytest.raises(DataError, match="does not exist: a source needs dataset.yaml"):
        copy_source_metadata(str(tmp_path / "empty"), tmp_path / "meta3")


def test_shards_are_planned_extracted_and_merged_into_one_dataset(source, tmp_path):
    config = tiny_config()
    videos = resolve_videos(dict(VIDEO_LISTS), source)  # the demo's lists, inside the prepared folder
    assert videos == {"train": str(source / "train_videos.csv"), "test": str(source / "test_videos.csv")}
    assert plan_shards(videos, 99) == [
        "0/5",
        "1/5",
        "2/5",
        "3/5",
        "4/5",
    ]  # at most one shard per video (5 test)
    shards = plan_shards(videos, 2)
    dirs = [tmp_path / f"shard{k}" for k in range(len(shards))]
    counts = [extract_shard(videos, str(d), config, shard) for d, shard in zip(dirs, shards)]
    assert sum(c["train"] for c in counts) == 6 and sum(c["test"] for c in counts) == 5
    summary = merge_dataset(source, tmp_path / "dataset", shards=len(shards), shard_dirs=dirs)
    assert summary == {
        "name": "cplvad-demo-videos",
        "classes": summary["classes"],
        "train_videos": 6,
        "test_videos": 5,
        "shards": 2,
    }
    dataset = load_dataset(tmp_path / "dataset" / "dataset.yaml")
    assert len(dataset.train.samples()) == 6 and not (tmp_path / "dataset" / "videos").exists()
    with pytest.raises(DataError, match="shard 1/2 has no manifest"):
        merge_dataset(source, tmp_path / "incomplete", shards=2, shard_dirs=dirs[:1])


def _data_params(*overrides: str) -> dict:
    """The ``data`` step's params (``STEP_KEYS["data"]``) of the tiny settings plus overrides."""
    return select_keys(tiny_config(*overrides).model_dump(mode="json", exclude_none=True), ["data"])


def test_the_data_plan_extracts_videos_and_reads_published_features(source, mini_releases, tmp_path):
    ucf = f"data.features_root={mini_releases['ucf-crime']}"
    manifest = f"data.dataset={source / 'dataset.yaml'}"
    videos = [
        f"data.train_videos={source / 'train_videos.csv'}",
        f"data.test_videos={source / 'test_videos.csv'}",
    ]
    for overrides, source_uri, answer in [
        ((), "", "extract"),
        ((), str(source), "extract"),
        (("data.dataset=ucf-crime", ucf), "", "features"),
        ((manifest, *videos), "", "extract"),
        ((manifest,), "", "features"),
    ]:
        assert c.plan_data.python_func(params=_data_params(*overrides), source_uri=source_uri) == answer, (
            overrides
        )
    # a wrong choice fails here, before any work, naming the setting
    with pytest.raises(DataError, match="data.features_root"):
        c.plan_data.python_func(
            params=_data_params("data.dataset=ucf-crime", f"data.features_root={tmp_path / 'no'}"),
            source_uri="",
        )
    with pytest.raises(DataError, match="data.train_videos"):
        needs_extraction(
            DataConfig(
                dataset=str(source / "dataset.yaml"),
                train_videos=str(tmp_path / "none"),
                test_videos=str(source / "test_videos.csv"),
            )
        )
    with pytest.raises(
        ConfigError, match="source_uri s3://b/ucf and data.dataset=ucf-crime both choose the data"
    ):
        needs_extraction(
            DataConfig(dataset="ucf-crime", features_root=str(mini_releases["ucf-crime"])), "s3://b/ucf"
        )


def test_published_features_become_the_dataset_artifact(mini_releases, tmp_path):
    """The benchmark branch: a built-in benchmark's manifest over the miniature release, checked, in the
    Dataset artifact that the training steps read (no extraction)."""
    release = mini_releases["ucf-crime"]
    artifact = Dataset(uri=str(tmp_path / "resolve-data" / "dataset"))
    c.resolve_data.python_func(
        params=_data_params("data.dataset=ucf-crime", f"data.features_root={release}"), dataset=artifact
    )
    folder = Path(artifact.path)
    assert sorted(p.name for p in folder.iterdir() if p.name != ".cplvad") == [
        "annotations.json",
        "dataset.yaml",
        "segment_annotations.json",
        "test.csv",
        "train.csv",
    ]
    manifest = yaml.safe_load((folder / "dataset.yaml").read_text())
    assert (
        manifest["train_features_root"] == manifest["test_features_root"] == str(release.resolve())
    )  # read in place
    dataset = load_dataset(folder / "dataset.yaml")
    assert dataset.name == "ucf-crime" and len(dataset.test) == len(load_benchmark("ucf-crime").test) == 290
    assert len(dataset.train.samples()) == 12  # 6 training videos x 2 crops of the miniature release
    assert artifact.metadata == {
        "source": "ucf-crime",
        "name": "ucf-crime",
        "train_videos": len(dataset.train),
        "test_videos": 290,
    }


def test_videos_are_prepared_for_a_sharded_extraction(source, tmp_path):
    """The extraction branch: the demo (generated in the folder) and a manifest with video lists (its
    annotations copied, its videos left where they are); the shard plan's jobs carry the videos."""
    demo = Dataset(uri=str(tmp_path / "demo"))
    videos = c.prepare_data.python_func(
        params=select_keys(tiny_config().to_dict(), ["demo", "data"]), source_uri="", data=demo
    )
    assert videos == VIDEO_LISTS and (Path(demo.path) / "train_videos.csv").is_file()
    jobs = c.plan_shards.python_func(data=demo, videos=videos, num_shards=2, params={"extract": {}})
    assert jobs == [
        {"shard": "0/2", "params": {"extract": {}}, "videos": VIDEO_LISTS},
        {"shard": "1/2", "params": {"extract": {}}, "videos": VIDEO_LISTS},
    ]

    config = tiny_config(
        f"data.dataset={source / 'dataset.yaml'}",
        f"data.train_videos={source / 'train_videos.csv'}",
        f"data.test_videos={source}/test_videos.csv",
    )
    summary = prepare_videos(config, tmp_path / "manifest")
    assert summary["videos"] == {
        "train": str(source / "train_videos.csv"),
        "test": str(source / "test_videos.csv"),
    }
    manifest = yaml.safe_load((tmp_path / "manifest" / "dataset.yaml").read_text())
    assert (manifest["train_list"], manifest["test_list"]) == ("features/train.csv", "features/test.csv")
    assert (tmp_path / "manifest" / manifest["annotations"]).read_text() == (
        source / "annotations.txt"
    ).read_text()
    assert not (tmp_path / "manifest" / "videos").exists()
    with pytest.raises(ConfigError, match="names no videos to extract"):
        prepare_videos(tiny_config(f"data.dataset={source / 'dataset.yaml'}"), tmp_path / "nothing")


def test_html_pages_are_self_contained(tmp_path):
    png = tmp_path / "t.png"
    png.write_bytes(b"\x89PNG fake")
    page = evaluation_page(
        {"frame_auc_binary": 81.234, "map_avg": None}, title="<b>run</b>", model="s3://m", timelines=png
    )
    assert "<td>frame_auc_binary</td><td>81.23</td>" in page and "<td>map_avg</td><td>n/a</td>" in page
    assert "&lt;b&gt;run&lt;/b&gt;" in page and "data:image/png;base64,iVBORyBmYWtl" in page
    assert "<img" not in evaluation_page({}, title="x", model="m", timelines=tmp_path / "missing.png")
    assert "<pre>| a &lt; b |</pre>" in ablation_page("| a < b |", png)
    # every value is text: a metric name or model URI cannot inject markup
    page = evaluation_page({"<script>": 1.0}, title="t", model="m' onload='x", timelines=png)
    assert "<script>" not in page and "<td>&lt;script&gt;</td><td>1.00</td>" in page
    assert "m&#39; onload=&#39;x" in page


def test_grid_rows_need_every_row_of_the_grid():
    metrics = {row.label: {"frame_auc_binary": float(i)} for i, row in enumerate(GRID)}
    rows = grid_rows(metrics)
    assert [r["row"] for r in rows] == [row.label for row in GRID]
    assert rows[0] == {"row": GRID[0].label, "supervision": "none", "car": True, "frame_auc_binary": 0.0}
    del metrics[GRID[2].label]
    with pytest.raises(DataError, match=f"no evaluation for the ablation rows \\['{GRID[2].label}'\\]"):
        grid_rows(metrics)
