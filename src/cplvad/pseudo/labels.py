"""Pseudo labels of every training sample, from the stage-1 model through CAR, and their file format.

``pseudo.npz`` holds ``keys`` (``video__crop`` per training sample), ``lengths`` (valid snippets),
``abnormal``, ``car`` (the CAR settings as JSON) and one ``pseudo_<branch>`` array (N, n) per branch of
``cplvad.modeling.branches.BRANCHES`` (built in: ``pseudo_b``, ``pseudo_c``, from the B and C scores).
Stage 2 refuses a file whose samples differ from its training list, or that lacks a branch its route
needs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cplvad.config import CarConfig
from cplvad.data.training_set import TrainingSet
from cplvad.errors import DataError
from cplvad.io import NAME_ERRORS, load_npz, save_npz
from cplvad.modeling.branches import BRANCHES
from cplvad.modeling.dual_branch import CPLVAD
from cplvad.pseudo.rules import refine

KEYS = ("keys", "lengths", "abnormal", "car")
PREFIX = "pseudo_"
"""Each branch's labels are the array ``pseudo_<branch>``."""
REMEDY = "regenerate them with `cplvad pseudo-labels`"


@dataclass
class PseudoLabels:
    keys: list[str]
    lengths: np.ndarray
    abnormal: np.ndarray
    labels: dict[str, np.ndarray]
    """Branch name -> (N, n) float32 pseudo labels."""
    car: dict

    def save(self, path: str | Path) -> None:
        save_npz(
            path,
            keys=np.asarray(self.keys, dtype=str),
            lengths=self.lengths.astype(np.int64),
            abnormal=self.abnormal.astype(bool),
            car=np.asarray(json.dumps(self.car, sort_keys=True)),
            **{PREFIX + name: arr.astype(np.float32) for name, arr in self.labels.items()},
        )

    @classmethod
    def load(cls, path: str | Path) -> PseudoLabels:
        d = load_npz(path, KEYS, "pseudo labels", REMEDY)
        with np.load(path, allow_pickle=False) as z:  # readable: load_npz has just read it
            labels = {k[len(PREFIX) :]: z[k] for k in z.files if k.startswith(PREFIX)}
        if not labels:
            raise DataError(f"pseudo labels {path}: no {PREFIX}<branch> arrays; {REMEDY}")
        return cls(
            [str(k) for k in d["keys"]], d["lengths"], d["abnormal"], labels, json.loads(str(d["car"]))
        )

    @property
    def n(self) -> int:
        return next(iter(self.labels.values())).shape[1]

    def digest(self) -> str:
        """Samples, lengths and every branch's labels (in name order)."""
        h = hashlib.sha256("\n".join(self.keys).encode("utf-8", NAME_ERRORS))
        for arr in (self.lengths, *(self.labels[name] for name in sorted(self.labels))):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def branch(self, name: str, source: str = "pseudo labels") -> np.ndarray:
        """One branch's labels, or a DataError saying which branches the file holds."""
        if name not in self.labels:
            raise DataError(
                f"{source} hold no labels of branch {name!r} (they hold {', '.join(sorted(self.labels))}); "
                f"{REMEDY} with the branch registered"
            )
        return self.labels[name]

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
        if self.n != n or not np.array_equal(self.lengths, lengths):
            raise DataError(
                f"{source} were made with {self.n} snippets per sample but the model uses {n} "
                "(model.max_len) or the features changed; regenerate them"
            )

    def stats(self) -> dict[str, float]:
        """Over valid abnormal snippets: each branch's positive fraction (label >= 0.5), and the agreement
        and positive-snippet IoU of the branches (the mean over pairs; with b and c, between those two)."""
        valid = (np.arange(self.n)[None, :] < self.lengths[:, None]) & self.abnormal[:, None]
        positive = {name: arr[valid] >= 0.5 for name, arr in sorted(self.labels.items())}
        out = {
            f"pseudo_{name}_positive_fraction": float(p.mean()) if p.size else 0.0
            for name, p in positive.items()
        }
        pairs = [agreement(a, b) for a, b in itertools.combinations(positive.values(), 2)]
        if pairs:
            out["pseudo_agreement"] = float(np.mean([p["agreement"] for p in pairs]))
            out["pseudo_iou"] = float(np.mean([p["iou"] for p in pairs]))
        return out


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Two boolean masks of the same snippets: the share of snippets where they agree, and the IoU of their
    positive snippets (1 when neither has any)."""
    union = (a | b).sum()
    return {
        "agreement": float((a == b).mean()) if a.size else 1.0,
        "iou": float((a & b).sum() / union) if union else 1.0,
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
    """Score every training sample with the stage-1 model and refine every registered branch with CAR."""
    model.eval().to(device)
    n = data.features.shape[1]
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in BRANCHES}
    for start in tqdm(
        range(0, len(data), batch_size), desc="pseudo labels", unit="batch", disable=not progress
    ):
        idx = torch.arange(start, min(start + batch_size, len(data)))
        out = model(data.features[idx].to(device), data.masks(idx).to(device))
        abnormal = data.abnormal[idx].to(device)
        for name, labels in parts.items():
            labels.append(refine(BRANCHES[name].score(out), out.mask, abnormal, n, car).cpu())
    return PseudoLabels(
        keys=list(data.keys),
        lengths=data.lengths.numpy().copy(),
        abnormal=data.abnormal.numpy().copy(),
        labels={name: torch.cat(labels).numpy() for name, labels in parts.items()},
        car=car.model_dump(mode="json"),
    )
