"""The pipeline's data step (`cplvad datasets prepare`) and training in a work folder: what DVC stages run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config

import cplvad.extract.runner as runner_mod
from cplvad.config import DemoConfig, load_config
from cplvad.data import load_dataset
from cplvad.data.selection import plan_data
from cplvad.errors import ConfigError, DataError
from cplvad.io import write_text
from cplvad.storage.ownership import claim_folder
from cplvad.workflow import train_stage
from cplvad.workflow.data import default_work_dir, prepare_data


@pytest.fixture(scope="module")
def demo_videos(tmp_path_factory) -> Path:
    from cplvad.extract.demo_videos import write_demo_videos

    out = tmp_path_factory.mktemp("videos") / "demo"
    write_demo_videos(
        out, DemoConfig(seed=3, train_normal=2, train_abnormal=2, test_normal=1, test_abnormal=2)
    )
    return out


def test_the_plan_says_what_runs_before_anything_does(demo_videos, tmp_path, mini_releases):
    plan = plan_data(load_config(None).data, demo_videos)
    assert plan.kind == "demo" and plan.needs_extraction and set(plan.videos) == {"train", "test"}
    bench = plan_data(
        load_config(None, ["data.dataset=ucf-crime", f"data.features_root={mini_releases['ucf-crime']}"]).data
    )
    assert bench.kind == "benchmark" and not bench.needs_extraction and bench.manifest is None
    with pytest.raises(ConfigError, match="data.features_root is not set"):
        plan_data(load_config(None, ["data.dataset=xd-violence"]).data)
    with pytest.raises(ConfigError, match="--demo-videos"):
        plan_data(load_config(None).data)
    manifest = demo_videos / "dataset.yaml"
    own = load_config(
        None,
        [
            f"data.dataset={manifest}",
            f"data.train_videos={tmp_path / 'nope'}",
            f"data.test_videos={demo_videos / 'test_videos.csv'}",
        ],
    ).data
    with pytest.raises(DataError, match="data.train_videos: .*nope does not exist"):
        plan_data(own)
    assert not plan_data(load_config(None, [f"data.dataset={manifest}"]).data).needs_extraction


@pytest.mark.slow
def test_an_interrupted_extraction_resumes_from_the_work_folder(demo_videos, tmp_path, monkeypatch):
    config = tiny_config("extract.device=cpu", "extract.batch_size=16")
    out = tmp_path / "data" / "dataset"
    real_extract = runner_mod.extract
    calls = []

    def stop_before_test(src, dst, cfg, options, **kw):
        calls.append(options.list_name)
        if options.list_name == "test.csv":
            raise KeyboardInterrupt  # killed in the middle of the step
        return real_extract(src, dst, cfg, options, **kw)

    monkeypatch.setattr(runner_mod, "extract", stop_before_test)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(config, out, demo_dir=demo_videos, progress=False)
    work = default_work_dir(out)
    assert not out.exists() and (work / "dataset/features/train.extraction.json").is_file()

    monkeypatch.setattr(runner_mod, "extract", real_extract)
    log = []
    manifest = prepare_data(config, out, demo_dir=demo_videos, progress=False, log=log.append)
    assert "train: extracted 0, skipped 4 (done before)" in "\n".join(log)  # the finished split is not redone
    assert not work.exists()
    dataset = load_dataset(manifest)
    assert len(dataset.train) == 4 and len(dataset.test) == 3 and dataset.annotations
    written = yaml.safe_load(manifest.read_text())
    assert written["train_list"] == "features/train.csv" and (out / written["annotations"]).is_file()


def test_a_work_folder_of_another_selection_is_not_reused(demo_videos, tmp_path, monkeypatch):
    out = tmp_path / "dataset"
    work = default_work_dir(out)
    with claim_folder(work), claim_folder(work / "dataset"):  # an earlier run's work, for other videos
        write_text(work / "dataset/features/stale.npy", "x")
        write_text(work / "selection.json", json.dumps({"dataset": "other.yaml", "videos": {}}))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner_mod, "extract", interrupted)  # only the claim of the work folder matters here
    with pytest.raises(KeyboardInterrupt):
        prepare_data(
            tiny_config("extract.device=cpu", "extract.batch_size=16"),
            out,
            demo_dir=demo_videos,
            progress=False,
        )
    assert not (work / "dataset/features/stale.npy").exists()
    assert json.loads((work / "selection.json").read_text())["dataset"] == "demo"


@pytest.mark.slow
def test_training_in_a_work_folder_moves_only_the_finished_model(demo_manifest, tmp_path):
    config = tiny_config()
    out, work = tmp_path / "stage1", tmp_path / ".stage1.work"
    first = train_stage(demo_manifest, out, config, stage=1, progress=False, work_dir=work)
    assert not first.skipped and (out / "model.pt").is_file() and not work.exists()
    assert "calibration" in json.loads((out / "meta.json").read_text())["extra"]
    # a finished model left in the work folder (killed before the move) is moved, not retrained
    out.rename(work)
    again = train_stage(demo_manifest, out, config, stage=1, progress=False, work_dir=work)
    assert again.skipped and (out / "model.pt").is_file() and not work.exists()


def test_a_manifest_is_rebased_by_data_features_root(demo_manifest, tmp_path, monkeypatch):
    from cplvad.data.selection import resolve_dataset

    raw = yaml.safe_load(demo_manifest.read_text())
    features = demo_manifest.parent / raw.pop("features_root")
    for key in ("train_list", "test_list", "annotations"):
        raw[key] = str(demo_manifest.parent / raw[key])
    own = tmp_path / "own.yaml"
    own.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(features.parent)  # a relative data.features_root is relative to where the command runs
    cfg = load_config(None, [f"data.dataset={own}", f"data.features_root={features.name}"]).data
    dataset = load_dataset(resolve_dataset(cfg, tmp_path / "resolved"))
    assert dataset.train.samples()[0][2].is_file() and len(dataset.test) == 8
