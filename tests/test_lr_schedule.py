"""Learning-rate schedules (``train.lr_schedule``): the release's warm-up and step decay, stepped per
optimisation step and resumed from the checkpoint to the same weights and rates."""

import bisect

import pytest
import torch
from conftest import crash_in_third_epoch, tiny_config

from cplvad.config import TrainConfig
from cplvad.errors import ConfigError
from cplvad.train.schedules import LR_SCHEDULES
from cplvad.train.trainer import fingerprint
from cplvad.workflow import train_stage

SCHEDULE = (
    "train.epochs=3",
    "train.checkpoint_seconds=0",
    "train.lr_schedule=multistep",
    "train.lr_milestones=[1, 2]",
    "train.lr_gamma=0.5",
    "train.lr_warmup_fraction=0.2",
)


def release_lr(base, t, milestones, gamma, warmup_iters, warmup_factor):
    """The rate of step t under the release's WarmupMultiStepLR (utils/lr_warmup.py), written out."""
    if t <= warmup_iters:
        alpha = t / warmup_iters
        return base * (warmup_factor * (1 - alpha) + alpha)
    return base * gamma ** bisect.bisect_right(milestones, t)


def rates(cfg: TrainConfig, steps_per_epoch: int, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = LR_SCHEDULES[cfg.lr_schedule](opt, cfg, steps_per_epoch)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_multistep_with_warm_up_follows_the_release_formula():
    cfg = TrainConfig(
        epochs=10, lr=1e-4, lr_schedule="multistep", lr_milestones=[4, 8], lr_warmup_fraction=0.3
    )
    spe = 7
    got = rates(cfg, spe, 10 * spe)
    warmup = int(0.3 * 10 * spe)  # pct_start x max_iter
    want = [release_lr(1e-4, t, [4 * spe, 8 * spe], 0.1, warmup, 0.5) for t in range(10 * spe)]
    assert got == pytest.approx(want, rel=1e-12)
    assert (
        got[0] == pytest.approx(5e-5)
        and got[4 * spe] == pytest.approx(1e-5)
        and got[-1] == pytest.approx(1e-6)
    )


def test_without_warm_up_the_rate_drops_at_epoch_boundaries_and_none_keeps_it():
    cfg = TrainConfig(epochs=3, lr=1.0, lr_schedule="multistep", lr_milestones=[1, 5], lr_gamma=0.1)
    assert rates(cfg, 2, 6) == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.1])  # 5 > epochs: never applies
    assert rates(TrainConfig(lr=0.3), 2, 4) == [0.3] * 4


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["train.lr_schedule=cosine"], "registered: none, multistep"),
        (["train.lr_milestones=[4, 2]"], "strictly increasing"),
        (
            ["train.lr_schedule=multistep", "train.lr_milestones=[1]", "train.lr_warmup_fraction=0.5"],
            "warm-up",
        ),
    ],
)
def test_bad_schedules_are_refused_by_name(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        tiny_config(*overrides)


def test_schedule_knobs_change_the_fingerprint_only_when_a_schedule_is_on(demo_dataset):
    from cplvad.data.training_set import load_training_set

    data = load_training_set(demo_dataset, 32, progress=False)
    plain = fingerprint(tiny_config(), data, 1, None)
    assert fingerprint(tiny_config("train.lr_milestones=[3]"), data, 1, None) == plain
    assert fingerprint(tiny_config("train.lr_schedule=multistep"), data, 1, None) != plain


@pytest.mark.slow
def test_killed_after_a_milestone_resumes_to_the_same_weights_and_rates(demo_manifest, tmp_path, monkeypatch):
    seen: list[float] = []
    original = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        seen.append(float(self.param_groups[0]["lr"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    cfg = tiny_config(*SCHEDULE)
    full = train_stage(demo_manifest, tmp_path / "full", cfg, stage=1, progress=False)
    uninterrupted, seen[:] = list(seen), []
    with monkeypatch.context() as m:
        crash_in_third_epoch(m)  # after two epochs: both milestones passed, checkpoint at epoch 2
        with pytest.raises(KeyboardInterrupt):
            train_stage(demo_manifest, tmp_path / "resumed", cfg, stage=1, progress=False)
    before_kill, seen[:] = list(seen), []
    resumed = train_stage(demo_manifest, tmp_path / "resumed", cfg, stage=1, progress=False)
    assert resumed.resumed_from == 2
    assert before_kill + seen == uninterrupted  # the same rate at every step
    # 24 samples, balanced batches of 8: 3 steps per epoch; warm-up int(0.2 x 9) = 1 step from 0.5 x lr
    assert uninterrupted == pytest.approx([5e-4, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 2.5e-4])
    assert [h["lr"] for h in resumed.history] == [h["lr"] for h in full.history]
    a, b = (torch.load(d / "model.pt", weights_only=True) for d in (tmp_path / "full", tmp_path / "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
