"""Training, pseudo labels, evaluation and the `run` command on the small demo dataset with a tiny model."""

import json
from pathlib import Path

import conftest
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from cplvad.cli import cli
from cplvad.config import Config
from cplvad.data import load_dataset
from cplvad.errors import DataError
from cplvad.eval import Predictions
from cplvad.modeling.factory import load_model
from cplvad.pseudo.labels import PseudoLabels
from cplvad.workflow import evaluate, make_pseudo_labels, train_stage


def tiny_config(**sections) -> Config:
    return conftest.tiny_config(*(f"{k}={v}" for k, v in sections.items()))


def weights(model_dir: Path) -> dict:
    return torch.load(model_dir / "model.pt", weights_only=True)


@pytest.fixture(scope="module")
def stage1(demo_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("s1") / "stage1"
    result = train_stage(demo_manifest, out, tiny_config(), stage=1, progress=False)
    return out, result


def test_stage1_writes_a_self_describing_model_dir(stage1, demo_dataset):
    out, result = stage1
    assert {p.name for p in out.iterdir()} >= {"model.pt", "config.json", "meta.json", "history.json"}
    assert not (out / "checkpoint.pt").exists()
    state = weights(out)  # weights_only=True
    assert not any(k.startswith("prompts.encoder.") for k in state)
    meta = json.loads((out / "meta.json").read_text())
    assert (
        meta["classes"] == list(demo_dataset.classes.names)
        and meta["feature_dim"] == 512
        and meta["stage"] == 1
    )
    assert [h["epoch"] for h in result.history] == [1, 2]
    model, config, meta = load_model(out)
    assert config.model.width == 32 and bool(model.prompts.cache_valid)
    # threshold calibrated on the 6 normal training videos for the configured false-alarm rate
    cal = meta.extra["calibration"]
    assert cal["normal_videos"] == 6 and cal["false_alarm_rate"] == 0.01 and 0 < cal["threshold"] < 1
    # no train.validation_fraction: every video is trained on and there is no validation record
    assert (
        "validation" not in meta.extra
        and "val_video_auc" not in result.history[0]
        and meta.train_samples == 24
    )


def test_training_is_deterministic_and_skips_when_done(stage1, demo_manifest, tmp_path):
    out, _ = stage1
    again = train_stage(demo_manifest, tmp_path / "again", tiny_config(), stage=1, progress=False)
    assert not again.skipped
    a, b = weights(out), weights(tmp_path / "again")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert train_stage(demo_manifest, out, tiny_config(), stage=1, progress=False).skipped
    with pytest.raises(DataError, match="different config"):
        train_stage(
            demo_manifest, tmp_path / "again", tiny_config(**{"train.lr": 0.01}), stage=1, progress=False
        )
    forced = train_stage(
        demo_manifest,
        tmp_path / "again",
        tiny_config(**{"train.lr": 0.01}),
        stage=1,
        progress=False,
        replace_stale=True,
    )
    assert not forced.skipped and not torch.equal(
        weights(tmp_path / "again")["binary_head.cls.conv.bias"], a["binary_head.cls.conv.bias"]
    )


def test_interrupted_training_resumes_to_the_same_weights(demo_manifest, tmp_path, monkeypatch):
    cfg = tiny_config(**{"train.epochs": 3, "train.checkpoint_seconds": 0})
    full = train_stage(demo_manifest, tmp_path / "full", cfg, stage=1, progress=False)
    with monkeypatch.context() as m:
        conftest.crash_in_third_epoch(m)
        with pytest.raises(KeyboardInterrupt):
            train_stage(demo_manifest, tmp_path / "resumed", cfg, stage=1, progress=False)
    assert (tmp_path / "resumed" / "checkpoint.pt").is_file() and not (
        tmp_path / "resumed" / "model.pt"
    ).exists()
    resumed = train_stage(demo_manifest, tmp_path / "resumed", cfg, stage=1, progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    a, b = weights(tmp_path / "full"), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.history[-1]["loss"] == pytest.approx(resumed.history[-1]["loss"])


def test_checkpoints_wait_for_their_interval_which_never_changes_the_weights(
    demo_manifest, tmp_path, monkeypatch
):
    """Epochs shorter than ``checkpoint_seconds`` write no checkpoint; the interval is not part of the
    fingerprint, so a run with another interval resumes or skips the same directory."""
    cfg = tiny_config(**{"train.epochs": 3, "train.checkpoint_seconds": 3600})
    with monkeypatch.context() as m:
        conftest.crash_in_third_epoch(m)
        with pytest.raises(KeyboardInterrupt):
            train_stage(demo_manifest, tmp_path / "run", cfg, stage=1, progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    done = train_stage(demo_manifest, tmp_path / "run", cfg, stage=1, progress=False)
    assert [h["epoch"] for h in done.history] == [1, 2, 3]  # started over: nothing to resume from
    again = tiny_config(**{"train.epochs": 3, "train.checkpoint_seconds": 0})
    assert train_stage(demo_manifest, tmp_path / "run", again, stage=1, progress=False).skipped


def test_pseudo_labels_stage2_and_evaluation(stage1, demo_manifest, demo_dataset, tmp_path):
    out, _ = stage1
    pseudo = make_pseudo_labels(
        demo_manifest, out, tiny_config(), out=tmp_path / "pseudo.npz", progress=False
    )
    loaded = PseudoLabels.load(tmp_path / "pseudo.npz")
    assert loaded.keys == pseudo.keys and len(loaded.keys) == 24 and loaded.labels["b"].shape == (24, 32)
    normal = ~loaded.abnormal
    assert loaded.labels["b"][normal].sum() == 0 and loaded.labels["c"][normal].sum() == 0
    # every abnormal sample keeps at least one positive snippet (top-k fallback)
    assert (loaded.labels["b"][loaded.abnormal].max(axis=1) > 0).all()
    stats = loaded.stats()
    assert 0 < stats["pseudo_b_positive_fraction"] <= 1 and 0 <= stats["pseudo_agreement"] <= 1

    for mode in ("cross", "self"):
        s2 = train_stage(
            demo_manifest,
            tmp_path / mode,
            tiny_config(**{"stage2.supervision": mode}),
            stage=2,
            pseudo_path=tmp_path / "pseudo.npz",
            progress=False,
        )
        assert "focal" in s2.history[-1]
    ev = evaluate(
        demo_manifest,
        tmp_path / "cross",
        tiny_config(),
        metrics_out=tmp_path / "m.json",
        predictions_out=tmp_path / "p.npz",
        progress=False,
    )
    assert json.loads((tmp_path / "m.json").read_text()) == ev.metrics
    pred = Predictions.load(tmp_path / "p.npz")
    assert pred.names == demo_dataset.test.names
    np.testing.assert_array_equal(pred.lengths, demo_dataset.test_lengths_from_features())
    np.testing.assert_allclose(pred.classes.sum(axis=1), 1.0, atol=1e-5)


def _subset_manifest(demo_manifest: Path, tmp_path: Path, keep) -> Path:
    data = yaml.safe_load(demo_manifest.read_text())
    root = demo_manifest.parent
    lines = (root / data["train_list"]).read_text().splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if keep(ln)]
    (tmp_path / "train.csv").write_text("\n".join(kept) + "\n")
    data.update(
        train_list=str(tmp_path / "train.csv"),
        test_list=str(root / data["test_list"]),
        annotations=str(root / data["annotations"]),
        features_root=str(root / data["features_root"]),
    )
    out = tmp_path / "subset.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def test_bad_inputs_stop_before_training(stage1, demo_manifest, tmp_path):
    only_normal = _subset_manifest(demo_manifest, tmp_path, lambda ln: ",Normal" in ln)
    with pytest.raises(DataError, match="no abnormal"):
        train_stage(only_normal, tmp_path / "x", tiny_config(), stage=1, progress=False)
    only_abnormal = _subset_manifest(demo_manifest, tmp_path, lambda ln: ",Normal" not in ln)
    with pytest.raises(DataError, match="no normal"):
        train_stage(only_abnormal, tmp_path / "y", tiny_config(), stage=1, progress=False)
    assert not (tmp_path / "x" / "model.pt").exists()

    # pseudo labels of the full list do not fit a subset of it
    out, _ = stage1
    make_pseudo_labels(demo_manifest, out, tiny_config(), out=tmp_path / "pseudo.npz", progress=False)
    fewer = _subset_manifest(demo_manifest, tmp_path, lambda ln: "__1.npy" not in ln)
    with pytest.raises(DataError, match="do not match the training list"):
        train_stage(
            fewer, tmp_path / "z", tiny_config(), stage=2, pseudo_path=tmp_path / "pseudo.npz", progress=False
        )

    # a model trained on another class list
    data = yaml.safe_load(demo_manifest.read_text())
    root = demo_manifest.parent
    data.update(
        classes=["Normal", "Fighting", "Explosion", "RoadAccidents", "Stealing", "Arson"],
        train_list=str(root / data["train_list"]),
        test_list=str(root / data["test_list"]),
        annotations=str(root / data["annotations"]),
        features_root=str(root / data["features_root"]),
    )
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(data))
    with pytest.raises(DataError, match="trained on classes"):
        evaluate(other, out, tiny_config(), progress=False)
    with pytest.raises(DataError, match="not a cplvad model directory"):
        evaluate(demo_manifest, tmp_path, tiny_config(), progress=False)


def test_features_of_the_wrong_width_are_refused(stage1, demo_manifest, tmp_path):
    out, _ = stage1
    ds = load_dataset(demo_manifest)
    feats = tmp_path / "feats"
    for video in ds.test:
        src = ds.test.locate(video.rows[0])
        dst = feats / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        np.save(dst, np.load(src)[:, :128])
    data = yaml.safe_load(demo_manifest.read_text())
    root = demo_manifest.parent
    data.update(
        train_list=str(root / data["train_list"]),
        test_list=str(root / data["test_list"]),
        annotations=str(root / data["annotations"]),
        features_root=str(feats),
    )
    narrow = tmp_path / "narrow.yaml"
    narrow.write_text(yaml.safe_dump(data))
    with pytest.raises(DataError, match="128-d features but 512"):
        evaluate(narrow, out, tiny_config(), progress=False)


def test_run_command_end_to_end(demo_manifest, tmp_path):
    args = [
        "run",
        "--dataset",
        str(demo_manifest),
        "--out",
        str(tmp_path / "run"),
        "--quiet",
        *conftest.tiny_cli_args(),
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    for rel in (
        "stage1/model.pt",
        "stage1/metrics.json",
        "pseudo.npz",
        "stage2/model.pt",
        "stage2/metrics.json",
        "metrics.json",
    ):
        assert (run / rel).is_file(), rel
    assert json.loads((run / "metrics.json").read_text()) == json.loads(
        (run / "stage2/metrics.json").read_text()
    )
    assert "frame AUC" in res.output
    res = CliRunner().invoke(
        cli, ["train", "--dataset", str(demo_manifest), "--stage", "2", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "--pseudo" in res.output
