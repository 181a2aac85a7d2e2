"""Training of both stages: balanced batches, Adam, AMP on CUDA, resumable checkpoints, progress bars.

Stage 1 learns from video labels only (top-k BCE + MIL-align). Stage 2 trains a fresh model with the same
losses plus focal losses on the stage-1 pseudo labels, routed by ``stage2.supervision``:
``cross`` (B <- pseudo_c, C <- pseudo_b), ``b_to_c`` (C <- pseudo_b), ``c_to_b`` (B <- pseudo_c),
``self`` (B <- pseudo_b, C <- pseudo_c).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cplvad.config import Config
from cplvad.errors import DataError
from cplvad.io import atomic_path, write_json
from cplvad.modeling.factory import (
    CPLVAD,
    ModelMeta,
    create_model,
    is_model_dir,
    load_trainable_state,
    save_model,
    trainable_state,
)
from cplvad.modeling.losses import abnormality_logit, level_focal, mil_align, topk_bce
from cplvad.pseudo.labels import PseudoLabels
from cplvad.train.data import TrainingSet, batches

CHECKPOINT_FILE = "checkpoint.pt"
HISTORY_FILE = "history.json"
FINGERPRINT_FILE = "fingerprint.txt"

# which pseudo labels supervise (B branch, C branch) in stage 2
ROUTES = {"cross": ("c", "b"), "b_to_c": (None, "b"), "c_to_b": ("c", None), "self": ("b", "c")}


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise DataError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device("cuda" if name in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


@dataclass
class TrainResult:
    model_dir: Path
    history: list[dict[str, float]]
    skipped: bool
    seconds: float


def fingerprint(config: Config, data: TrainingSet, stage: int, pseudo: PseudoLabels | None) -> str:
    """What the trained weights depend on: config sections, training samples, pseudo labels."""
    sections = {k: v for k, v in config.to_dict().items() if k in ("seed", "clip", "model", "train")}
    if stage == 2:
        sections["stage2"] = config.stage2.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps({"stage": stage, "config": sections}, sort_keys=True).encode())
    digest.update("\n".join(data.keys).encode())
    digest.update(data.lengths.numpy().tobytes())
    if pseudo is not None:
        digest.update(pseudo.digest().encode())
    return digest.hexdigest()


class _Targets:
    """Stage-2 pseudo-label targets aligned with the training samples."""

    def __init__(self, pseudo: PseudoLabels, data: TrainingSet, route: tuple[str | None, str | None]):
        pseudo.check_matches(data.keys, data.lengths.numpy(), data.features.shape[1])
        tensors = {"b": torch.from_numpy(pseudo.pseudo_b), "c": torch.from_numpy(pseudo.pseudo_c)}
        self.for_b = tensors[route[0]] if route[0] else None
        self.for_c = tensors[route[1]] if route[1] else None


def _step_loss(
    model: CPLVAD, x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, abnormal: torch.Tensor,
    targets: _Targets | None, idx: torch.Tensor, config: Config, autocast,
) -> tuple[torch.Tensor, dict[str, float]]:
    with autocast:
        out = model(x, mask)
    binary = [b.float() for b in out.binary]
    classes = [c.float() for c in out.classes]
    l_bce = topk_bce(binary, out.masks, abnormal.float())
    l_nce = mil_align(classes, out.masks, labels)
    loss = l_bce + l_nce
    parts = {"bce": l_bce.item(), "nce": l_nce.item()}
    if targets is not None:
        cfg = config.stage2
        focal = torch.zeros((), device=x.device)
        if targets.for_b is not None:
            y = targets.for_b[idx].to(x.device)
            focal = focal + level_focal(binary, out, y, mask, cfg.focal_gamma, cfg.focal_alpha)
        if targets.for_c is not None:
            y = targets.for_c[idx].to(x.device)
            z = [abnormality_logit(c) for c in classes]
            focal = focal + level_focal(z, out, y, mask, cfg.focal_gamma, cfg.focal_alpha)
        loss = loss + cfg.focal_weight * focal
        parts["focal"] = focal.item()
    parts["loss"] = loss.item()
    return loss, parts


def train(
    config: Config,
    data: TrainingSet,
    out_dir: str | Path,
    stage: int,
    classes: list[str],
    dataset_name: str = "",
    pseudo: PseudoLabels | None = None,
    progress: bool = True,
    force: bool = False,
) -> TrainResult:
    """Train one stage into ``out_dir`` (a model directory); resume or skip when it was started before."""
    out_dir = Path(out_dir)
    if stage not in (1, 2):
        raise DataError(f"stage must be 1 or 2, got {stage}")
    if stage == 2 and pseudo is None:
        raise DataError("stage 2 needs pseudo labels (--pseudo pseudo.npz from `cplvad pseudo-labels`)")
    data.check_trainable("training list")
    targets = _Targets(pseudo, data, ROUTES[config.stage2.supervision]) if stage == 2 and pseudo else None
    fp = fingerprint(config, data, stage, pseudo)
    fp_file = out_dir / FINGERPRINT_FILE
    if force and out_dir.exists():
        shutil.rmtree(out_dir)
    if fp_file.is_file() and fp_file.read_text().strip() != fp:
        raise DataError(
            f"{out_dir} holds a model or checkpoint of a different config or data; choose another --out, "
            "or pass --force to overwrite it"
        )
    if fp_file.is_file() and is_model_dir(out_dir):
        history = json.loads((out_dir / HISTORY_FILE).read_text()) if (out_dir / HISTORY_FILE).is_file() else []
        return TrainResult(out_dir, history, skipped=True, seconds=0.0)

    device = resolve_device(config.train.device)
    model, meta = create_model(config, classes, data.feature_dim, stage, dataset_name)
    meta.train_samples = len(data)
    model.to(device)
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=config.train.lr, weight_decay=config.train.weight_decay
    )
    rng = np.random.default_rng(config.seed + stage)
    history: list[dict[str, float]] = []
    start_epoch = 0
    ckpt_path = out_dir / CHECKPOINT_FILE
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        load_trainable_state(model, ckpt["model"], str(ckpt_path))
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["torch_rng"])
        rng.bit_generator.state = ckpt["numpy_rng"]
        history, start_epoch = ckpt["history"], int(ckpt["epoch"])
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        fp_file.write_text(fp + "\n")

    use_amp = device.type == "cuda" and config.train.amp
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else nullcontext()
    features = data.features.to(device) if device.type == "cuda" else data.features
    labels, abnormal = data.labels.to(device), data.abnormal.to(device)
    lengths = data.lengths.to(device)
    n = data.features.shape[1]
    positions = torch.arange(n, device=device)[None, :]
    t0 = time.perf_counter()
    for epoch in range(start_epoch, config.train.epochs):
        model.train()
        epoch_batches = list(batches(data.abnormal, config.train.batch_size, config.train.balanced, rng))
        sums: dict[str, float] = {}
        seen = 0
        bar = tqdm(epoch_batches, desc=f"stage {stage} epoch {epoch + 1}/{config.train.epochs}", unit="batch",
                   disable=not progress, leave=False)
        tick = time.perf_counter()
        for idx in bar:
            idx_dev = idx.to(device)
            x = features[idx_dev].to(device, non_blocking=True)
            mask = positions < lengths[idx_dev][:, None]
            loss, parts = _step_loss(model, x, mask, labels[idx_dev], abnormal[idx_dev], targets, idx, config, autocast)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(idx)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            bar.set_postfix(loss=f"{parts['loss']:.4f}", videos_s=f"{seen / (time.perf_counter() - tick):.0f}")
        record = {"epoch": epoch + 1, **{k: v / seen for k, v in sums.items()}, "seconds": time.perf_counter() - tick}
        history.append(record)
        if progress:
            tqdm.write(f"stage {stage} epoch {epoch + 1}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "seconds")))
        if (epoch + 1) % config.train.checkpoint_every == 0 and epoch + 1 < config.train.epochs:
            _save_checkpoint(ckpt_path, model, optimizer, rng, history, epoch + 1)

    save_model(model, config, meta, out_dir)
    write_json(out_dir / HISTORY_FILE, history)
    ckpt_path.unlink(missing_ok=True)
    return TrainResult(out_dir, history, skipped=False, seconds=time.perf_counter() - t0)


def _save_checkpoint(path: Path, model: CPLVAD, optimizer, rng: np.random.Generator, history, epoch: int) -> None:
    state = {
        "model": {k: v.detach().cpu() for k, v in trainable_state(model).items()},
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": rng.bit_generator.state,
        "history": history,
        "epoch": epoch,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


__all__ = ["ModelMeta", "TrainResult", "resolve_device", "train"]
