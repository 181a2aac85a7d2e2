"""The library functions the Kubeflow components call, outside a pipeline: params split per step, the
dataset folders (source metadata, shard plan, shard extraction, merge), HTML pages and the ablation rows."""

import shutil

import pytest
import yaml
from conftest import tiny_config

from cplvad.config import config_from_params, select_keys
from cplvad.data import load_dataset
from cplvad.errors import ConfigError, DataError
from cplvad.eval.html_report import ablation_page, evaluation_page
from cplvad.extract.dataset_folder import copy_source_metadata, extract_shard, merge_dataset, plan_shards
from cplvad.extract.demo_videos import write_demo_videos
from cplvad.workflow.ablation import GRID, grid_rows


def test_select_keys_takes_sections_single_keys_and_top_level_values():
    params = tiny_config().to_dict()
    part = select_keys(params, ["seed", "model", "predict.false_alarm_rate", "train.device", "nothere", "eval.nope"])
    assert part == {"seed": 0, "model": params["model"], "predict": {"false_alarm_rate": 0.01},
                    "train": {"device": "auto"}}
    part["model"]["width"] = 16
    assert params["model"]["width"] == 32  # a copy
    assert config_from_params(part).model.width == 16 and config_from_params(part).train.epochs == 20  # defaults


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
    assert (tmp_path / "meta" / manifest["annotations"]).read_text() == (source / manifest["annotations"]).read_text()
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
    assert plan_shards(str(source), 99) == ["0/5", "1/5", "2/5", "3/5", "4/5"]  # at most one shard per video (5 test)
    shards = plan_shards(str(source), 2)
    dirs = [tmp_path / f"shard{k}" for k in range(len(shards))]
    counts = [extract_shard(str(source), str(d), config, shard) for d, shard in zip(dirs, shards)]
    assert sum(c["train"] for c in counts) == 6 and sum(c["test"] for c in counts) == 5
    summary = merge_dataset(source, tmp_path / "dataset", shards=len(shards), shard_dirs=dirs)
    assert summary == {"name": "cplvad-demo-videos", "classes": summary["classes"], "train_videos": 6,
                       "test_videos": 5, "shards": 2}
    dataset = load_dataset(tmp_path / "dataset" / "dataset.yaml")
    assert len(dataset.train.samples()) == 6 and not (tmp_path / "dataset" / "videos").exists()
    with pytest.raises(DataError, match="shard 1/2 has no manifest"):
        merge_dataset(source, tmp_path / "incomplete", shards=2, shard_dirs=dirs[:1])


def test_html_pages_are_self_contained(tmp_path):
    png = tmp_path / "t.png"
    png.write_bytes(b"\x89PNG fake")
    page = evaluation_page({"frame_auc_binary": 81.234, "map_avg": None}, title="<b>run</b>", model="s3://m",
                           timelines=png)
    assert "<td>frame_auc_binary</td><td>81.23</td>" in page and "<td>map_avg</td><td>n/a</td>" in page
    assert "&lt;b&gt;run&lt;/b&gt;" in page and "data:image/png;base64,iVBORyBmYWtl" in page
    assert "<img" not in evaluation_page({}, title="x", model="m", timelines=tmp_path / "missing.png")
    assert "<pre>| a &lt; b |</pre>" in ablation_page("| a < b |", png)


def test_grid_rows_need_every_row_of_the_grid():
    metrics = {row.label: {"frame_auc_binary": float(i)} for i, row in enumerate(GRID)}
    rows = grid_rows(metrics)
    assert [r["row"] for r in rows] == [row.label for row in GRID]
    assert rows[0] == {"row": GRID[0].label, "supervision": "none", "car": True, "frame_auc_binary": 0.0}
    del metrics[GRID[2].label]
    with pytest.raises(DataError, match=f"no evaluation for the ablation rows \\['{GRID[2].label}'\\]"):
        grid_rows(metrics)
