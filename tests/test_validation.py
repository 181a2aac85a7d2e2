"""train.validation_fraction: held-out training videos, their video AUC per epoch and in meta.json."""

import json

import conftest
import numpy as np
import pytest
import torch

import cplvad.train.validation as validation_mod
from cplvad.data.training_set import TrainingSet
from cplvad.errors import DataError
from cplvad.pseudo.labels import PseudoLabels
from cplvad.train.validation import hold_out, split_id, video_metrics
from cplvad.workflow import make_pseudo_labels, train_stage


def training_set(classes: dict[str, int], crops: int = 2, n: int = 32) -> TrainingSet:
    """``classes``: videos per class (index 0 normal); ``crops`` samples per video; features are zeros."""
    names = list(classes)
    keys, videos, labels, abnormal = [], [], [], []
    for c, (cls, count) in enumerate(classes.items()):
        for v in range(count):
            for k in range(crops):
                keys.append(f"{cls}{v}__{k}")
                videos.append(f"{cls}{v}")
                labels.append(np.eye(len(names), dtype=np.float32)[c])
                abnormal.append(c > 0)
    size = len(keys)
    return TrainingSet(
        torch.zeros(size, n, 4),
        torch.full((size,), n),
        torch.from_numpy(np.stack(labels)),
        torch.tensor(abnormal),
        keys,
        videos,
    )


def held_videos(data: TrainingSet, split) -> set[str]:
    return {data.videos[i] for i in split.validation.tolist()}


def test_split_is_stratified_by_class_and_keeps_crops_together():
    data = training_set({"Normal": 20, "Fighting": 8, "Shooting": 4})
    split = hold_out(data, 0.25, seed=0)
    held = held_videos(data, split)
    # 5 of 20 normal; 3 of 12 abnormal in proportion: (i + 0.5) / 8 -> .0625 .1875 | (i + 0.5) / 4 -> .125
    assert split.videos == 8 == len(held)
    assert sum(v.startswith("Normal") for v in held) == 5
    assert (
        sum(v.startswith("Fighting") for v in held) == 2 and sum(v.startswith("Shooting") for v in held) == 1
    )
    for i in split.validation.tolist():  # every crop of a held-out video is held out, none of the others
        assert data.videos[i] in held
    for i in split.train.tolist():
        assert data.videos[i] not in held
    assert len(split.train) + len(split.validation) == len(data)


def test_split_is_deterministic_from_the_seed():
    data = training_set({"Normal": 20, "Fighting": 8, "Shooting": 4})
    assert held_videos(data, hold_out(data, 0.25, 3)) == held_videos(data, hold_out(data, 0.25, 3))
    assert held_videos(data, hold_out(data, 0.25, 3)) != held_videos(data, hold_out(data, 0.25, 4))


def test_tiny_sets_hold_out_one_of_each_kind_or_refuse():
    data = training_set({"Normal": 3, "Fighting": 1, "Shooting": 1, "Riot": 1})
    held = held_videos(data, hold_out(data, 0.1, 0))
    assert sum(v.startswith("Normal") for v in held) == 1 and len(held) == 2
    with pytest.raises(DataError, match="validation_fraction"):
        hold_out(training_set({"Normal": 1, "Fighting": 3}), 0.2, 0)


def test_video_auc_averages_crops_of_top_k_snippet_scores(monkeypatch):
    # per sample (n = 32 valid snippets -> k = 3): the mean of its three highest snippet scores
    data = training_set({"Normal": 2, "Fighting": 2}, crops=2)
    top = torch.tensor(
        [
            0.1,
            0.3,  # Normal0: video score 0.2
            0.6,
            0.6,  # Normal1: 0.6
            0.5,
            0.9,  # Fighting0: 0.7
            0.4,
            0.4,
        ]
    )  # Fighting1: 0.4
    snippets = top[:, None].repeat(1, 32)

    def fake_scores(model, x, lengths):
        rows = [int(i) for i in x[:, 0, 0].tolist()]
        return snippets[rows], None

    data.features[:, :, 0] = torch.arange(len(data)).float()[:, None]  # lets the fake find each sample's row
    monkeypatch.setattr(validation_mod, "score_chunks", fake_scores)
    # pairs (abnormal > normal): 0.7 > 0.2, 0.7 > 0.6, 0.4 > 0.2, 0.4 < 0.6 -> 3 of 4; ranked 0.7 (abnormal),
    # 0.6, 0.4 (abnormal), 0.2: AP = (1/1 + 2/3) / 2
    metrics = video_metrics(torch.nn.Identity(), data, torch.device("cpu"), batch_size=3)
    assert metrics == {"val_video_auc": 75.0, "val_video_ap": round(100 * (1 + 2 / 3) / 2, 4)}


def test_a_split_is_identified_by_its_videos_not_their_order():
    data = training_set({"Normal": 3, "Fighting": 3})
    assert split_id(data.subset(torch.arange(0, 4))) == split_id(data.subset(torch.tensor([3, 1, 2, 0])))
    assert split_id(data.subset(torch.arange(0, 4))) != split_id(data.subset(torch.arange(4, 8)))


@pytest.mark.slow
def test_both_stages_report_validation_on_the_same_held_out_videos(demo_manifest, tmp_path):
    cfg = conftest.tiny_config("train.validation_fraction=0.25")
    stage1 = tmp_path / "stage1"
    result = train_stage(demo_manifest, stage1, cfg, stage=1, progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert all(0 <= h["val_video_auc"] <= 100 for h in result.history)
    meta = json.loads((stage1 / "meta.json").read_text())
    # demo fixture: 6 normal + 6 abnormal videos, 2 crops each -> 2 + 2 held out, 8 videos = 16 samples trained on
    split = meta["extra"]["validation"].pop("split")
    assert meta["extra"]["validation"] == {
        "video_auc": result.history[-1]["val_video_auc"],
        "video_ap": result.history[-1]["val_video_ap"],
        "videos": 4,
        "fraction": 0.25,
    }
    assert meta["train_samples"] == 16
    pseudo = make_pseudo_labels(demo_manifest, stage1, cfg, out=tmp_path / "pseudo.npz", progress=False)
    assert len(PseudoLabels.load(tmp_path / "pseudo.npz").keys) == len(pseudo.keys) == 24  # every sample
    stage2 = train_stage(
        demo_manifest, tmp_path / "stage2", cfg, stage=2, pseudo_path=tmp_path / "pseudo.npz", progress=False
    )
    meta2 = json.loads((tmp_path / "stage2" / "meta.json").read_text())
    assert meta2["extra"]["validation"]["videos"] == 4 and meta2["train_samples"] == 16
    assert meta2["extra"]["validation"]["video_auc"] == stage2.history[-1]["val_video_auc"]
    assert meta2["extra"]["validation"]["split"] == split  # the same held-out videos in both stages
