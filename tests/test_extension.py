"""Extension by registration: a toy third branch and routes that use it, registered here, are generated,
stored and trained on without any change to the trainer, the pseudo-label code or the config schema; a toy
built-in dataset, registered here, is listed, checked, resolved and evaluated without any change to the
config schema or the commands."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config

from cplvad.cli import cli
from cplvad.data import load_dataset
from cplvad.data.benchmark_specs import BENCHMARKS, BenchmarkSpec, PublishedFiles, register_benchmark
from cplvad.data.benchmarks import load_benchmark
from cplvad.data.selection import resolve_dataset
from cplvad.errors import ConfigError, DataError
from cplvad.eval import Predictions
from cplvad.modeling.branches import BRANCHES, Branch
from cplvad.pseudo.labels import PseudoLabels
from cplvad.pseudo.rules import CAR_RULES, simple_rule
from cplvad.train.supervision import SUPERVISION
from cplvad.workflow import make_pseudo_labels, train_stage


def _toy_scores(out):
    """A score of its own, ranking snippets the other way round from B's (so its pseudo labels differ)."""
    return 1 - torch.sigmoid(out.binary.float())


@pytest.fixture
def toy():
    """Branch ``toy`` (trained through the B head's logits, refined from its own score) and two routes."""
    BRANCHES.register("toy")(Branch(lambda out: out.binary.float(), _toy_scores))
    SUPERVISION.register("toy_to_b")({"b": "toy"})
    SUPERVISION.register("c_to_toy")({"toy": "c"})
    yield
    BRANCHES.unregister("toy")
    SUPERVISION.unregister("toy_to_b")
    SUPERVISION.unregister("c_to_toy")


def weights(model_dir):
    return torch.load(model_dir / "model.pt", weights_only=True)


def same_weights(a, b):
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_a_registered_third_branch_is_labelled_routed_and_trained(toy, demo_manifest, tmp_path):
    stage1 = tmp_path / "stage1"
    train_stage(demo_manifest, stage1, tiny_config(), stage=1, progress=False)
    pseudo = make_pseudo_labels(
        demo_manifest, stage1, tiny_config(), out=tmp_path / "pseudo.npz", progress=False
    )
    assert set(pseudo.labels) == {"b", "c", "toy"}
    assert not np.array_equal(pseudo.labels["toy"], pseudo.labels["b"])
    assert set(PseudoLabels.load(tmp_path / "pseudo.npz").labels) == {"b", "c", "toy"}

    def stage2(name, supervision, pseudo_path=tmp_path / "pseudo.npz"):
        cfg = tiny_config(f"stage2.supervision={supervision}")  # the config accepts the registered routes
        train_stage(demo_manifest, tmp_path / name, cfg, stage=2, pseudo_path=pseudo_path, progress=False)
        return tmp_path / name

    # as a source: B trained on the toy labels equals B trained on C's slot holding the toy labels
    swapped = PseudoLabels(pseudo.keys, pseudo.lengths, pseudo.abnormal, dict(pseudo.labels), pseudo.car)
    swapped.labels["c"] = pseudo.labels["toy"]
    swapped.save(tmp_path / "swapped.npz")
    assert same_weights(stage2("toy_to_b", "toy_to_b"), stage2("c_slot", "c_to_b", tmp_path / "swapped.npz"))
    # as a target: its logits (B's head) trained on C's labels equal B trained on them
    plain_c_to_b = stage2("c_to_b", "c_to_b")
    assert same_weights(stage2("c_to_toy", "c_to_toy"), plain_c_to_b)
    assert not same_weights(tmp_path / "toy_to_b", plain_c_to_b)  # and the toy labels did make a difference


def test_a_route_needs_its_branches_in_the_pseudo_label_file(toy, demo_manifest, tmp_path):
    b = np.zeros((24, 32), dtype=np.float32)
    old = PseudoLabels([f"k{i}" for i in range(24)], np.full(24, 32), np.ones(24, bool), {"b": b, "c": b}, {})
    with pytest.raises(DataError, match=r"no labels of branch 'toy' \(they hold b, c\); regenerate"):
        old.branch("toy")
    with pytest.raises(ConfigError, match="registered: cross, b_to_c, c_to_b, self, toy_to_b"):
        tiny_config("stage2.supervision=toy_to_c")


def test_pseudo_label_files_of_the_two_branch_format_still_load(tmp_path):
    """Files written before branches were registered hold exactly pseudo_b and pseudo_c: read unchanged."""
    labels = np.random.default_rng(0).random((3, 8)).astype(np.float32)
    np.savez(
        tmp_path / "old.npz",
        keys=np.array(["a__0", "b__0", "c__0"]),
        lengths=np.array([8, 5, 8]),
        abnormal=np.array([True, False, True]),
        pseudo_b=labels,
        pseudo_c=labels[::-1],
        car=np.asarray("{}"),
    )
    loaded = PseudoLabels.load(tmp_path / "old.npz")
    assert set(loaded.labels) == {"b", "c"} and np.array_equal(loaded.labels["c"], labels[::-1])
    assert {"pseudo_b_positive_fraction", "pseudo_c_positive_fraction", "pseudo_agreement"} <= set(
        loaded.stats()
    )


def test_a_registered_car_rule_is_accepted_and_used(demo_manifest):
    calls = []

    def counting(level_scores, level_mask, valid, abnormal, cfg):
        calls.append(level_scores.shape)
        return simple_rule(level_scores, level_mask, valid, abnormal, cfg)

    CAR_RULES.register("counting")(counting)
    try:
        from cplvad.pseudo.rules import refine

        cfg = tiny_config("car.rule=counting").car
        scores, mask = torch.full((2, 3, 32), 0.9), torch.ones(2, 3, 32, dtype=torch.bool)
        out = refine(scores, mask, torch.tensor([True, False]), 32, cfg)
        assert calls == [(2, 3, 32)] and out[0].max() == 1.0 and out[1].sum() == 0
    finally:
        CAR_RULES.unregister("counting")


TOY_TEST = {"spill10": ("Spill", 4), "fall10": ("Fall", 3), "quiet10": ("Quiet", 2)}
"""The toy benchmark's test videos: label and length in snippets (16 frames each)."""
TOY_ANNOTATIONS = "spill10 Spill 16 48 -1 -1\nfall10 Fall 0 16 32 48\nquiet10 Quiet -1 -1 -1 -1\n"
TOY_SNIPPET_GT = [0, 1, 1, 0, 1, 0, 1, 0, 0]
"""The annotations per snippet, in test-list order."""
TOY_TRAIN = {"quiet_videos/quiet01": "Quiet", "quiet_videos/quiet02": "Quiet", "Spill/spill01": "Spill"}


def _folder(label: str) -> str:
    return "quiet_videos" if label == "Quiet" else label


def _toy_spec(tmp_path, **changes):
    fields = {
        "name": "toy",
        "title": "Toy",
        "release": "ToyRelease",
        "classes": ("Quiet", "Spill", "Fall"),
        "train_dir": "train",
        "test_dir": "test",
        "normal_folders": ("quiet_videos",),
        "headline_metric": "frame_ap_binary",
        "published": PublishedFiles(
            source="tests/test_extension.py",
            train_list="toy_train.csv",
            test_list="toy_test.csv",
            annotations=("toy_annotations.txt", "ucf"),
            segment_annotations=("toy_annotations.txt", "ucf"),
        ),
        "metadata": tmp_path / "toy.json",
        **changes,
    }
    return BenchmarkSpec(**fields)


def _build_toy_metadata(tmp_path, spec) -> None:
    """The recipe's metadata step: published files -> the build script -> the metadata file."""
    published = tmp_path / "published"
    published.mkdir()
    rows = [
        f"/home/pub/ToyRelease/train/{v}__{k}.npy,{label}" for v, label in TOY_TRAIN.items() for k in (0, 1)
    ]
    (published / "toy_train.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    test = [f"/home/pub/ToyRelease/test/{_folder(lab)}/{v}__0.npy,{lab}" for v, (lab, _) in TOY_TEST.items()]
    (published / "toy_test.csv").write_text("path,label\n" + "\n".join(test) + "\n")
    frames = [f"{v},{label},{16 * t},yes" for v, (label, t) in TOY_TEST.items()]
    (published / "test_video_frames.csv").write_text("video,label,frames,exact\n" + "\n".join(frames) + "\n")
    (published / "toy_annotations.txt").write_text(TOY_ANNOTATIONS)
    script = Path(__file__).resolve().parents[1] / "scripts" / "build_benchmark_metadata.py"
    loader = importlib.util.spec_from_file_location("build_benchmark_metadata", script)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    spec.metadata.write_text(module.dump(module.build(published, spec)))


def _toy_release(root):
    """A feature release in the toy layout: ``train/`` and ``test/``, one folder per class."""
    rng = np.random.default_rng(0)
    for video in TOY_TRAIN:
        for k in (0, 1):
            (root / "train" / Path(video).parent).mkdir(parents=True, exist_ok=True)
            np.save(root / "train" / f"{video}__{k}.npy", rng.standard_normal((5, 16)).astype(np.float32))
    for video, (label, snippets) in TOY_TEST.items():
        (root / "test" / _folder(label)).mkdir(parents=True, exist_ok=True)
        np.save(root / "test" / _folder(label) / f"{video}__0.npy", np.zeros((snippets, 16), np.float32))
    return root


@pytest.fixture
def toy_benchmark(tmp_path):
    """Built-in dataset ``toy``: a spec and its metadata file, registered; the registry is all that changes."""
    spec = _toy_spec(tmp_path)
    _build_toy_metadata(tmp_path, spec)
    register_benchmark(spec)
    yield _toy_release(tmp_path / "ToyRelease")
    BENCHMARKS.unregister("toy")


def test_a_registered_builtin_dataset_is_listed_checked_resolved_and_evaluated(toy_benchmark, tmp_path):
    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    listing = invoke("datasets")
    assert listing.exit_code == 0
    assert "Toy: 3 classes, 3 training and 3 test videos; published features (ToyRelease)" in listing.output
    assert "headline metric frame_ap_binary" in listing.output

    check = invoke("datasets", "check", "toy", "--features-root", toy_benchmark)
    assert check.exit_code == 0, check.output
    assert "train: 3 of 3 videos found, 2 crops per video, 16-d" in check.output
    assert "match the annotated frame counts for 3 of 3 videos" in check.output

    data = tiny_config("data.dataset=toy", f"data.features_root={toy_benchmark}").data
    dataset = load_dataset(resolve_dataset(data, tmp_path / "resolved"))
    assert sorted((v.name, v.label) for v in dataset.train) == [
        ("quiet01", "Quiet"),
        ("quiet02", "Quiet"),
        ("spill01", "Spill"),
    ]
    assert dataset.test.locate(dataset.test.videos[0].rows[0]) == toy_benchmark / "test/Spill/spill10__0.npy"
    lengths = [t for _, t in TOY_TEST.values()]
    assert dataset.frame_ground_truth(lengths).tolist() == [x for x in TOY_SNIPPET_GT for _ in range(16)]

    # --dataset toy: scores equal to the annotations are a perfect frame AUC and AP
    n = sum(lengths)
    Predictions(
        names=list(TOY_TEST),
        lengths=np.array(lengths),
        binary=np.array(TOY_SNIPPET_GT, dtype=np.float64),
        classes=np.full((n, 3), 1 / 3, np.float32),
    ).save(tmp_path / "p.npz")
    res = invoke(
        "metrics", "--dataset", "toy", "--predictions", tmp_path / "p.npz", "--out", tmp_path / "m.json"
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["frame_auc_binary"] == metrics["frame_ap_binary"] == 100.0


def test_an_unknown_name_lists_the_registered_datasets_and_stale_metadata_is_refused(toy_benchmark, tmp_path):
    with pytest.raises(ConfigError, match=r"not a built-in dataset \(demo, ucf-crime, xd-violence, toy\)"):
        tiny_config("data.dataset=toys")
    BENCHMARKS.unregister("toy")
    register_benchmark(_toy_spec(tmp_path, classes=("Quiet", "Spill", "Fall", "Slip")))
    with pytest.raises(
        ConfigError, match=r"toy.json: its classes disagree with the registered benchmark 'toy'"
    ):
        load_benchmark("toy")
