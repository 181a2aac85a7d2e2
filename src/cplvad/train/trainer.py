"""Training of both stages: balanced batches, Adam, AMP on CUDA, resumable checkpoints, progress bars.

Stage 1 learns from video labels only (top-k BCE + MIL-align). Stage 2 trains a fresh model with the same
losses plus focal losses on the stage-1 pseudo labels, routed by ``stage2.supervision``: a registered route
(``cplvad.train.supervision``) names, per target branch, the branch whose pseudo labels train it (``cross``:
B <- C, C <- B). The learning rate follows ``train.lr_schedule`` step by step. With
``train.validation_fraction`` both stages leave the same held-out videos out (their pseudo labels exist
but are not trained on) and score them every epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cplvad.config import Config, EvalConfig
from cplvad.data.training_set import TrainingSet
from cplvad.device import resolve_device
from cplvad.errors import DataError
from cplvad.io import NAME_ERRORS, load_torch, write_json, write_text
from cplvad.modeling.branches import BRANCHES
from cplvad.modeling.factory import (
    CONFIG_FILE,
    CPLVAD,
    META_FILE,
    MODEL_FILES,
    WEIGHTS_FILE,
    ModelMeta,
    create_model,
    is_model_dir,
    load_trainable_state,
    save_model,
    trainable_state,
)
from cplvad.modeling.losses import level_focal, mil_align, topk_bce
from cplvad.pseudo.labels import PseudoLabels
from cplvad.storage.atomic import atomic_path, set_aside
from cplvad.train.batches import batches, steps_per_epoch
from cplvad.train.cuda_graph import GraphedStep
from cplvad.train.schedules import LR_SCHEDULES
from cplvad.train.supervision import SUPERVISION
from cplvad.train.validation import (
    HISTORY_AP_KEY,
    HISTORY_KEY,
    VALIDATION_KEY,
    hold_out,
    split_id,
    video_metrics,
)

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
HISTORY_FILE = "history.json"
FINGERPRINT_FILE = "fingerprint.txt"
LOG_EVERY = 10
"""Steps between progress-bar loss updates."""


@dataclass
class TrainResult:
    model_dir: Path
    history: list[dict[str, float]]
    skipped: bool
    seconds: float
    resumed_from: int = 0
    """Epochs restored from a checkpoint (0: trained from the start)."""

    def summary(self) -> dict[str, float | int | bool]:
        """Flat facts of the run, e.g. for artifact metadata: epochs, seconds, resumption, final losses."""
        last = self.history[-1] if self.history else {}
        return {
            "epochs": len(self.history),
            "seconds": round(self.seconds, 1),
            "skipped": self.skipped,
            "resumed_from_epoch": self.resumed_from,
            **{f"final_{k}": v for k, v in last.items() if k != "epoch"},
        }


EpochHook = Callable[[dict[str, float]], None]
"""Called with each epoch's record (``history.json`` entry) as soon as the epoch ends, e.g. to log it."""
CheckpointHook = Callable[[Path], None]
"""Called with the model directory after each checkpoint is written, e.g. to copy it somewhere durable."""


SCHEDULE_KEYS = ("lr_schedule", "lr_milestones", "lr_gamma", "lr_warmup_fraction", "lr_warmup_factor")
"""``train`` keys of the learning-rate schedule: left out of the fingerprint when it is ``none``."""
FUSION_KEYS = ("level_fusion", "level_upsampling")
"""``eval`` keys of the level fusion: in the fingerprint when not the paper's (the calibrated threshold and
the validation AUC of a model directory are scored with them)."""


def fingerprint(config: Config, data: TrainingSet, stage: int, pseudo: PseudoLabels | None) -> str:
    """What a trained model directory depends on: config sections, training samples, pseudo labels; keys
    at values that change nothing are left out, so the fingerprints of earlier runs still match."""
    sections = {k: v for k, v in config.to_dict().items() if k in ("seed", "clip", "model", "train")}
    del sections["train"]["checkpoint_seconds"]  # when checkpoints are written never changes the weights
    if config.train.lr_schedule == "none":  # its knobs are unused
        for key in SCHEDULE_KEYS:
            del sections["train"][key]
    fusion = {k: getattr(config.eval, k) for k in FUSION_KEYS}
    if fusion != {k: EvalConfig.model_fields[k].default for k in FUSION_KEYS}:
        sections["scoring"] = fusion
    if stage == 2:
        sections["stage2"] = config.stage2.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps({"stage": stage, "config": sections}, sort_keys=True).encode())
    digest.update("\n".join(data.keys).encode("utf-8", NAME_ERRORS))
    digest.update(data.lengths.numpy().tobytes())
    if pseudo is not None:
        digest.update(pseudo.digest().encode())
    return digest.hexdigest()


class _Targets:
    """Stage-2 pseudo-label targets aligned with the training samples: target branch -> (N, n) labels of
    its route's source branch, in the route's order."""

    def __init__(self, pseudo: PseudoLabels, data: TrainingSet, supervision: str):
        pseudo.check_matches(data.keys, data.lengths.numpy(), data.features.shape[1])
        route = SUPERVISION[supervision]
        for target in route:
            BRANCHES[target]  # a route may only train registered branches
        self.by_branch = {
            target: torch.from_numpy(
                pseudo.branch(source, f"pseudo labels for stage2.supervision={supervision}")
            )
            for target, source in route.items()
        }

    def subset(self, idx: torch.Tensor) -> _Targets:
        self.by_branch = {k: v[idx] for k, v in self.by_branch.items()}
        return self

    def to(self, device: torch.device) -> _Targets:
        self.by_branch = {k: v.to(device) for k, v in self.by_branch.items()}
        return self


def _step_loss(
    model: CPLVAD,
    x: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
    abnormal: torch.Tensor,
    targets: _Targets | None,
    idx: torch.Tensor,
    config: Config,
    autocast: Any,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The step's loss and its parts (detached, still on the device: no synchronisation here)."""
    with autocast:
        out = model(x, mask)
    l_bce = topk_bce(out.binary.float(), out.mask, abnormal.float())
    l_nce = mil_align(out.classes.float(), out.mask, labels)
    loss = l_bce + l_nce
    parts = {"bce": l_bce.detach(), "nce": l_nce.detach()}
    if targets is not None:
        cfg = config.stage2
        focal = torch.zeros((), device=x.device)
        for target, pseudo in targets.by_branch.items():
            logits = BRANCHES[target].logits(out)
            focal = focal + level_focal(logits, out.mask, pseudo[idx], mask, cfg.focal_gamma, cfg.focal_alpha)
        loss = loss + cfg.focal_weight * focal
        parts["focal"] = focal.detach()
    parts["loss"] = loss.detach()
    return loss, parts


@dataclass
class _Session:
    """What one training run carries from epoch to epoch (and through a checkpoint)."""

    model: CPLVAD
    meta: ModelMeta
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    rng: np.random.Generator
    device: torch.device
    use_graph: bool
    history: list[dict[str, float]]
    start_epoch: int = 0


def train(
    config: Config,
    data: TrainingSet,
    out_dir: str | Path,
    *,
    stage: int,
    classes: list[str],
    dataset_name: str = "",
    pseudo: PseudoLabels | None = None,
    progress: bool = True,
    force: bool = False,
    replace_stale: bool = False,
    on_epoch: EpochHook | None = None,
    on_checkpoint: CheckpointHook | None = None,
) -> TrainResult:
    """Train one stage into ``out_dir`` (a model directory); resume or skip when it was started before.

    ``force``: retrain from scratch whatever ``out_dir`` holds. ``replace_stale``: if it holds a model or
    checkpoint of another config or data, start over instead of stopping (what a pipeline re-run wants).
    ``on_epoch`` / ``on_checkpoint``: hooks for the caller (live tracking, durable checkpoints); the trainer
    itself knows nothing of MLflow or object stores.
    """
    out_dir = Path(out_dir)
    targets = _check_inputs(config, data, stage, pseudo)
    fp = fingerprint(config, data, stage, pseudo)
    if _finished_model(out_dir, fp, force=force, replace_stale=replace_stale):
        return TrainResult(out_dir, _read_history(out_dir), skipped=True, seconds=0.0)
    data, validation, targets = _hold_out_validation(config, data, targets)
    session = _resume_or_start(lambda: _new_session(config, data, stage, classes, dataset_name), out_dir, fp)
    run_step = _step_runner(session, config, data, targets)
    t0 = last_checkpoint = time.perf_counter()
    for epoch in range(session.start_epoch, config.train.epochs):
        record = _run_epoch(session, run_step, config, data, epoch=epoch, stage=stage, progress=progress)
        record.update(_validate(session, validation, progress))
        session.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if _checkpoint_due(config, epoch + 1, time.perf_counter() - last_checkpoint):
            _save_checkpoint(out_dir / CHECKPOINT_FILE, session, epoch + 1)
            last_checkpoint = time.perf_counter()
            if on_checkpoint is not None:
                on_checkpoint(out_dir)
    _record_validation(session, validation, config.train.validation_fraction)
    save_model(session.model, config, session.meta, out_dir)
    write_json(out_dir / HISTORY_FILE, session.history)
    (out_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    return TrainResult(
        out_dir,
        session.history,
        skipped=False,
        seconds=time.perf_counter() - t0,
        resumed_from=session.start_epoch,
    )


def _check_inputs(
    config: Config, data: TrainingSet, stage: int, pseudo: PseudoLabels | None
) -> _Targets | None:
    """Refuse what cannot be trained; the stage-2 targets aligned with the samples."""
    if stage not in (1, 2):
        raise DataError(f"stage must be 1 or 2, got {stage}")
    if stage == 2 and pseudo is None:
        raise DataError("stage 2 needs pseudo labels (--pseudo pseudo.npz from `cplvad pseudo-labels`)")
    data.check_trainable("training list")
    return _Targets(pseudo, data, config.stage2.supervision) if stage == 2 and pseudo else None


def _hold_out_validation(
    config: Config, data: TrainingSet, targets: _Targets | None
) -> tuple[TrainingSet, TrainingSet | None, _Targets | None]:
    """The training part, the held-out videos (None without ``train.validation_fraction``) and the
    pseudo-label targets of the training part."""
    if config.train.validation_fraction == 0:
        return data, None, targets
    split = hold_out(data, config.train.validation_fraction, config.seed)
    train_part = data.subset(split.train)
    train_part.check_trainable("training list without the validation videos")
    return train_part, data.subset(split.validation), targets.subset(split.train) if targets else None


def _validate(session: _Session, validation: TrainingSet | None, progress: bool) -> dict[str, float]:
    """The epoch's video-level AUC and AP on the held-out videos (nothing without a validation split)."""
    if validation is None:
        return {}
    metrics = video_metrics(session.model, validation, session.device)
    if progress:
        tqdm.write(
            f"validation video AUC {metrics[HISTORY_KEY]:.2f}, AP {metrics[HISTORY_AP_KEY]:.2f} "
            f"on {validation.video_count} videos"
        )
    return metrics


def _record_validation(session: _Session, validation: TrainingSet | None, fraction: float) -> None:
    """The final model's validation AUC and AP in meta.json (``extra.validation``), with the identity of
    the held-out videos: what ``cplvad promote`` compares."""
    if validation is None or not session.history:
        return
    last = session.history[-1]
    session.meta.extra[VALIDATION_KEY] = {
        "video_auc": last[HISTORY_KEY],
        **({"video_ap": last[HISTORY_AP_KEY]} if HISTORY_AP_KEY in last else {}),
        "videos": validation.video_count,
        "fraction": fraction,
        "split": split_id(validation),
    }


def _finished_model(out_dir: Path, fp: str, *, force: bool, replace_stale: bool) -> bool:
    """Whether ``out_dir`` already holds this very model, readable; clears it (or refuses) when it holds
    another. Files of a finished model that cannot be read are set aside: the model is trained again."""
    fp_file = out_dir / FINGERPRINT_FILE
    stale = fp_file.is_file() and fp_file.read_text(errors="replace").strip() != fp
    if force or (stale and replace_stale):
        for name in (CHECKPOINT_FILE, FINGERPRINT_FILE, HISTORY_FILE, *MODEL_FILES):
            (out_dir / name).unlink(missing_ok=True)
    elif stale:
        raise DataError(
            f"{out_dir} holds a model or checkpoint of a different config or data; choose another --out, "
            "or pass --force (or --replace-stale) to overwrite it"
        )
    if not (fp_file.is_file() and is_model_dir(out_dir)):
        return False
    damaged = _unreadable_outputs(out_dir)
    for path in damaged:
        log.warning("%s cannot be read; kept as %s, and the model is trained again", path, set_aside(path))
    return not damaged


def _unreadable_outputs(out_dir: Path) -> list[Path]:
    """The files of a finished model directory that do not load (each is checked on its own)."""
    damaged = []
    for name in (CONFIG_FILE, META_FILE, HISTORY_FILE):
        try:
            json.loads((out_dir / name).read_text())
        except FileNotFoundError:
            pass
        except ValueError:  # JSON or UTF-8
            damaged.append(out_dir / name)
    try:
        load_torch(out_dir / WEIGHTS_FILE, "a cplvad model file", "")
    except DataError:
        damaged.append(out_dir / WEIGHTS_FILE)
    return damaged


def _read_history(out_dir: Path) -> list[dict[str, float]]:
    path = out_dir / HISTORY_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def _new_session(
    config: Config, data: TrainingSet, stage: int, classes: list[str], dataset_name: str
) -> _Session:
    """A fresh model and optimizer on the configured device; the batch order's generator."""
    device = resolve_device(config.train.device, "train.device")
    model, meta = create_model(config, classes, data.feature_dim, stage, dataset_name)
    meta.train_samples = len(data)
    model.to(device)
    use_graph = device.type == "cuda" and config.train.cuda_graphs and config.train.balanced
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.train.lr,
        weight_decay=config.train.weight_decay,
        fused=device.type == "cuda",  # one kernel for all parameters
        capturable=use_graph,
    )
    if use_graph and config.train.lr_schedule != "none":
        _lr_on_device(optimizer, device)
    steps = steps_per_epoch(data.abnormal, config.train.batch_size, config.train.balanced)
    scheduler = LR_SCHEDULES[config.train.lr_schedule](optimizer, config.train, steps)
    rng = np.random.default_rng(config.seed + stage)
    return _Session(model, meta, optimizer, scheduler, rng, device, use_graph, history=[])


def _lr_on_device(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """The learning rate as a tensor on the device, for a schedule on the CUDA-graph path: a graph replays
    the kernels it captured with the arguments they had (a float rate is baked in), so the schedule must
    change the rate in device memory the kernels read (PyTorch's schedulers fill a tensor rate in place)."""
    for group in optimizer.param_groups:
        group["lr"] = torch.tensor(float(group["lr"]), device=device)


def _resume_or_start(new_session: Callable[[], _Session], out_dir: Path, fp: str) -> _Session:
    """Continue from the last checkpoint in ``out_dir``, or start afresh and mark the folder as this run's.

    A checkpoint that cannot be restored (truncated, damaged, of another shape) is set aside, kept under
    ``checkpoint.pt.damaged-<time>`` and named in a warning, and training starts again from the first epoch
    (checkpoints are replaced atomically, so there is no older one); the fresh session is seeded as any
    fresh start, so the result equals an uninterrupted run.
    """
    session = new_session()
    ckpt_path = out_dir / CHECKPOINT_FILE
    if ckpt_path.is_file():
        try:
            _restore(session, load_torch(ckpt_path, "a cplvad training checkpoint", ""), str(ckpt_path))
            saved = datetime.fromtimestamp(ckpt_path.stat().st_mtime).strftime("%Y-%m-%d %H:%M:%S")
            tqdm.write(f"resumed from epoch {session.start_epoch} (checkpoint of {saved})", file=sys.stderr)
            return session
        except (DataError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            reason = str(exc).split("; ")[0] if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "cannot resume from %s (%s); kept as %s, training starts again from epoch 1",
                ckpt_path,
                reason,
                set_aside(ckpt_path).name,
            )
            session = new_session()
    write_text(out_dir / FINGERPRINT_FILE, fp + "\n")
    return session


def _restore(session: _Session, ckpt: Any, source: str) -> None:
    """Load a checkpoint's state into ``session``; any error means it is not a checkpoint of this run."""
    load_trainable_state(session.model, ckpt["model"], source)
    session.optimizer.load_state_dict(ckpt["optimizer"])
    if torch.is_tensor(session.optimizer.param_groups[0]["lr"]):  # saved as a tensor: back on the device
        _lr_on_device(session.optimizer, session.device)
    session.scheduler.load_state_dict(ckpt["scheduler"])
    torch.set_rng_state(ckpt["torch_rng"])
    session.rng.bit_generator.state = ckpt["numpy_rng"]
    session.history, session.start_epoch = list(ckpt["history"]), int(ckpt["epoch"])


Step = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def _step_runner(session: _Session, config: Config, data: TrainingSet, targets: _Targets | None) -> Step:
    """``step(batch indices) -> loss parts``: one optimisation step, replayed as a CUDA graph where possible.

    The training data moves to the device once; a step only gathers its batch there.
    """
    device, model, optimizer, scheduler = session.device, session.model, session.optimizer, session.scheduler
    use_amp = device.type == "cuda" and config.train.amp
    # the autocast weight cache cannot live across graph replays
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not session.use_graph)
        if use_amp
        else nullcontext()
    )
    features = data.features.to(device) if device.type == "cuda" else data.features
    labels, abnormal = data.labels.to(device), data.abnormal.to(device)
    if targets is not None:
        targets.to(device)
    lengths = data.lengths.to(device)
    positions = torch.arange(data.features.shape[1], device=device)[None, :]

    def step_fn(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mask = positions < lengths[idx][:, None]
        return _step_loss(
            model, features[idx], mask, labels[idx], abnormal[idx], targets, idx, config, autocast
        )

    graphed: GraphedStep | None = None

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        nonlocal graphed
        if session.use_graph and graphed is None:
            graphed, session.use_graph = _capture(step_fn, optimizer, idx)
        if graphed is not None and len(idx) == len(graphed.static_idx):
            parts = graphed(idx)
        else:
            loss, parts = step_fn(idx)
            optimizer.zero_grad(set_to_none=graphed is None)  # a captured graph owns the .grad tensors
            loss.backward()
            optimizer.step()
        scheduler.step()
        return parts

    return step


def _run_epoch(
    session: _Session,
    step: Step,
    config: Config,
    data: TrainingSet,
    *,
    epoch: int,
    stage: int,
    progress: bool,
) -> dict[str, float]:
    """One pass over the balanced batches; the epoch's mean loss parts and its duration."""
    session.model.train()
    lr = float(session.scheduler.get_last_lr()[0])  # what the epoch's first step uses
    epoch_batches = list(batches(data.abnormal, config.train.batch_size, config.train.balanced, session.rng))
    # one host-to-device copy per epoch: a copy per step would make the CPU wait for the GPU every step
    on_device = torch.cat(epoch_batches).to(session.device).split([len(b) for b in epoch_batches])
    sums: dict[str, torch.Tensor] = {}
    seen = 0
    bar = tqdm(
        on_device,
        desc=f"stage {stage} epoch {epoch + 1}/{config.train.epochs}",
        unit="batch",
        disable=not progress,
        leave=False,
    )
    tick = time.perf_counter()
    for i, idx in enumerate(bar):
        parts = step(idx)
        seen += len(idx)
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v * len(idx)
        if progress and i % LOG_EVERY == 0:  # reading the loss synchronises the GPU: not every step
            bar.set_postfix(
                loss=f"{parts['loss'].item():.4f}", videos_s=f"{seen / (time.perf_counter() - tick):.0f}"
            )
    record = {
        "epoch": epoch + 1,
        **{k: v.item() / seen for k, v in sums.items()},
        "lr": lr,
        "seconds": time.perf_counter() - tick,
    }
    if progress:
        tqdm.write(
            f"stage {stage} epoch {epoch + 1}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "lr", "seconds"))
        )
    return record


def _checkpoint_due(config: Config, epochs_done: int, since_last: float) -> bool:
    """Every ``checkpoint_every`` epochs, at least ``checkpoint_seconds`` apart, never after the last epoch
    (the finished model replaces the checkpoint)."""
    return (
        epochs_done % config.train.checkpoint_every == 0
        and epochs_done < config.train.epochs
        and since_last >= config.train.checkpoint_seconds
    )


def _capture(step_fn, optimizer: torch.optim.Optimizer, idx: torch.Tensor) -> tuple[GraphedStep | None, bool]:
    try:
        return GraphedStep(step_fn, optimizer, idx), True
    except Exception as exc:  # an op that cannot be captured: train eagerly, just slower
        warnings.warn(f"CUDA graph capture failed ({exc}); training without CUDA graphs", stacklevel=2)
        optimizer.zero_grad(set_to_none=True)
        return None, False


def _save_checkpoint(path: Path, session: _Session, epoch: int) -> None:
    state = {
        "model": {k: v.detach().cpu() for k, v in trainable_state(session.model).items()},
        "optimizer": session.optimizer.state_dict(),
        "scheduler": session.scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": session.rng.bit_generator.state,
        "history": session.history,
        "epoch": epoch,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


__all__ = ["CheckpointHook", "EpochHook", "ModelMeta", "TrainResult", "train"]
