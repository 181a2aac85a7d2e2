"""Pseudo labels of every training sample, from the stage-1 model through CAR, and their file format.

``pseudo.npz`` holds ``keys`` (``video__crop`` per training sample), ``lengths`` (valid snippets),
``abnormal``, ``pseudo_b`` and ``pseudo_c`` ((N, n) from the B and C branch scores) and ``car`` (the CAR
settings as JSON). Stage 2 refuses a file whose samples differ from its training list.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cplvad.config import CarConfig
from cplvad.errors import DataError
from cplvad.io import NAME_ERRORS, load_npz, save_npz
from cplvad.modeling.dual_branch import CPLVAD
from cplvad.pseudo.car import refine
from cplvad.train.data import TrainingSet

KEYS = ("keys", "lengths", "abnormal", "pseudo_b", "pseudo_c", "car")


@dataclass
class PseudoLabels:
    keys: list[str]
    lengths: np.ndarray
    abnormal: np.ndarray
    pseudo_b: np.ndarray
    pseudo_c: np.ndarray
    car: dict

    def save(self, path: str | Path) -> None:
        save_npz(
            path,
            keys=np.asarray(self.keys, dtype=str),
            lengths=self.lengths.astype(np.int64),
            abnormal=self.abnormal.astype(bool),
            pseudo_b=self.pseudo_b.astype(np.float32),
            pseudo_c=self.pseudo_c.astype(np.float32),
            car=np.asarray(json.dumps(self.car, sort_keys=True)),
        )

    @classmethod
    def load(cls, path: str | Path) -> PseudoLabels:
        d = load_npz(path, KEYS, "pseudo labels", "regenerate them with `cplvad pseudo-labels`")
        return cls(
            [str(k) for k in d["keys"]],
            d["lengths"],
            d["abnormal"],
            d["pseudo_b"],
            d["pseudo_c"],
            json.loads(str(d["car"])),
        )

    def digest(self) -> str:
        h = hashlib.sha256("\n".join(self.keys).encode("utf-8", NAME_ERRORS))
        for arr in (self.lengths, self.pseudo_b, self.pseudo_c):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def check_matches(
        self, keys: list[str], lengths: np.ndarray, n: int, source: str = "pseudo labels"
    ) -> None:
        """Refuse labels made for another training list (or another n)."""
        if self.keys != keys:
            ours, theirs = set(keys), set(self.keys)
            missing, extra = sorted(ours - theirs), sorted(theirs - ours)
            detail = f"{len(missing)} training samples have none (e.g. {missing[:3]}), {len(extra)} are unknown (e.g. {extra[:3]})"
            if not missing and not extra:
                detail = "the samples are in another order"
            raise DataError(
                f"{source} do not match the training list: {detail}; regenerate them with `cplvad pseudo-labels` "
                "on this dataset"
            )
        if self.pseudo_b.shape[1] != n or not np.array_equal(self.lengths, lengths):
            raise DataError(
                f"{source} were made with {self.pseudo_b.shape[1]} snippets per sample but the model uses {n} "
                "(model.max_len) or the features changed; regenerate them"
            )

    def stats(self) -> dict[str, float]:
        """Positive fraction of each branch's labels and their agreement, over valid abnormal snippets."""
        n = self.pseudo_b.shape[1]
        valid = (np.arange(n)[None, :] < self.lengths[:, None]) & self.abnormal[:, None]
        b, c = self.pseudo_b[valid] >= 0.5, self.pseudo_c[valid] >= 0.5
        union = (b | c).sum()
        return {
            "pseudo_b_positive_fraction": float(b.mean()) if b.size else 0.0,
            "pseudo_c_positive_fraction": float(c.mean()) if c.size else 0.0,
            "pseudo_agreement": float((b == c).mean()) if b.size else 1.0,
            "pseudo_iou": float((b & c).sum() / union) if union else 1.0,
        }


@torch.no_grad()
def generate(
    model: CPLVAD,
    data: TrainingSet,
    car: CarConfig,
    device: torch.device,
    batch_size: int = 64,
    progress: bool = True,
) -> PseudoLabels:
    """Score every training sample with the stage-1 model and refine both branches with CAR."""
    model.eval().to(device)
    n = data.features.shape[1]
    out_b, out_c = [], []
    order = torch.arange(len(data))
    for start in tqdm(
        range(0, len(data), batch_size), desc="pseudo labels", unit="batch", disable=not progress
    ):
        idx = order[start : start + batch_size]
        x = data.features[idx].to(device)
        mask = data.masks(idx).to(device)
        abnormal = data.abnormal[idx].to(device)
        out = model(x, mask)
        b_scores = torch.sigmoid(out.binary.float())
        c_scores = 1 - torch.softmax(out.classes.float(), dim=-1)[..., 0]
        out_b.append(refine(b_scores, out.mask, abnormal, n, car).cpu())
        out_c.append(refine(c_scores, out.mask, abnormal, n, car).cpu())
    return PseudoLabels(
        keys=list(data.keys),
        lengths=data.lengths.numpy().copy(),
        abnormal=data.abnormal.numpy().copy(),
        pseudo_b=torch.cat(out_b).numpy(),
        pseudo_c=torch.cat(out_c).numpy(),
        car=car.model_dump(mode="json"),
    )
