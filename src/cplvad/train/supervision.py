"""Stage-2 supervision routes by name (``stage2.supervision``): which branch's pseudo labels train which
branch. A route maps a target branch to a source branch (names of ``cplvad.modeling.branches.BRANCHES``):
the target's logits get the focal loss against the source's pseudo labels. Kept free of torch, so the
config can check a name without loading the model code.
"""

from __future__ import annotations

from collections.abc import Mapping

from cplvad.registry import Registry

Route = Mapping[str, str]
"""target branch -> source branch of its pseudo labels; targets are trained in the route's order."""

SUPERVISION: Registry[Route] = Registry("stage2.supervision", "supervision route")

# the paper's Table 3 rows
SUPERVISION.register("cross")({"b": "c", "c": "b"})
SUPERVISION.register("b_to_c")({"c": "b"})
SUPERVISION.register("c_to_b")({"b": "c"})
SUPERVISION.register("self")({"b": "b", "c": "c"})
