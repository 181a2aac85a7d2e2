"""Extension by registration: a toy third branch and routes that use it, registered here, are generated,
stored and trained on without any change to the trainer, the pseudo-label code or the config schema."""

import numpy as np
import pytest
import torch
from conftest import tiny_config

from cplvad.errors import ConfigError, DataError
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
