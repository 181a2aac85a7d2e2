"""The model's branches by name: what CAR turns into pseudo labels and what stage 2 trains on them.

A branch reads the model's ``LevelOutputs``: ``logits`` (B, L, n) are what its focal loss trains, ``scores``
(B, L, n) in [0, 1] what CAR refines into its pseudo labels (by default the sigmoid of the logits). The
pseudo-label file holds one array per registered branch, and ``stage2.supervision`` routes them by name
(``cplvad.train.supervision``). A new head adds its output to ``LevelOutputs`` and registers a branch
here; nothing in the trainer, the pseudo-label generator or the config schema changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from cplvad.modeling.dual_branch import LevelOutputs
from cplvad.modeling.losses import abnormality_logit
from cplvad.registry import Registry


@dataclass(frozen=True)
class Branch:
    logits: Callable[[LevelOutputs], torch.Tensor]
    """(B, L, n) per-level logits, trained with the focal loss when the branch is a supervision target."""
    scores: Callable[[LevelOutputs], torch.Tensor] | None = None
    """(B, L, n) per-level scores in [0, 1] that CAR refines; None = sigmoid of ``logits``."""

    def score(self, out: LevelOutputs) -> torch.Tensor:
        return self.scores(out) if self.scores is not None else torch.sigmoid(self.logits(out))


BRANCHES: Registry[Branch] = Registry("branch", "model branch")


def _binary_logits(out: LevelOutputs) -> torch.Tensor:
    return out.binary.float()


def _category_logits(out: LevelOutputs) -> torch.Tensor:
    """Eq. 8: the C branch as one abnormality logit, sigmoid = 1 - P[normal]."""
    return abnormality_logit(out.classes.float())


def _category_scores(out: LevelOutputs) -> torch.Tensor:
    """1 - P[normal]: the total probability of the abnormal classes (the release forms the same score)."""
    return 1 - torch.softmax(out.classes.float(), dim=-1)[..., 0]


BRANCHES.register("b")(Branch(_binary_logits))
BRANCHES.register("c")(Branch(_category_logits, _category_scores))
