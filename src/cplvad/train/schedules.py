"""Learning-rate schedules by name (``train.lr_schedule``), built from PyTorch's schedulers and stepped
after every optimisation step; their state travels in the training checkpoint.

A schedule is ``build(optimizer, train_config, steps_per_epoch) -> LRScheduler``; register a new one in
``LR_SCHEDULES`` and the config accepts its name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import ChainedScheduler, ConstantLR, LinearLR, LRScheduler, MultiStepLR

from cplvad.config import TrainConfig
from cplvad.registry import Registry

ScheduleBuilder = Callable[[torch.optim.Optimizer, TrainConfig, int], LRScheduler]
LR_SCHEDULES: Registry[ScheduleBuilder] = Registry("train.lr_schedule", "learning-rate schedule")


@LR_SCHEDULES.register("none")
def constant(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> LRScheduler:
    """``train.lr`` throughout."""
    return ConstantLR(optimizer, factor=1.0, total_iters=0)


@LR_SCHEDULES.register("multistep")
def multistep(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> LRScheduler:
    """x ``lr_gamma`` after each epoch of ``lr_milestones``, after an optional linear warm-up.

    The release's ``WarmupMultiStepLR`` (utils/lr_warmup.py): for the first W = int(fraction x all steps)
    steps the factor rises linearly from ``lr_warmup_factor`` (step 0) to 1 (step W); then MultiStepLR.
    The config makes every milestone fall after the warm-up, where theirs would be lost."""
    decay = MultiStepLR(optimizer, [e * steps_per_epoch for e in cfg.lr_milestones], cfg.lr_gamma)
    warmup = int(cfg.lr_warmup_fraction * cfg.epochs * steps_per_epoch)
    if warmup == 0:
        return decay
    ramp = LinearLR(optimizer, start_factor=cfg.lr_warmup_factor, end_factor=1.0, total_iters=warmup)
    return ChainedScheduler([ramp, decay], optimizer=optimizer)
