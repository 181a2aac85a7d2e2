"""The pipeline's configuration, split into what each step reads."""

from typing import NamedTuple

from components.image import component


@component
def split_params(params: dict, steps: dict) -> NamedTuple(
    "StepParams",
    [
        ("prepare_data", dict),
        ("extract", dict),
        ("train_stage1", dict),
        ("pseudo_labels", dict),
        ("train_stage2", dict),
        ("evaluate", dict),
        ("data", dict),
        ("open_run", dict),
        ("register", dict),
        ("ablation_table", dict),
        ("scoring", dict),
    ],
):
    """Validate ``params`` (the params.yaml mapping) and give each step only the keys it reads (``steps``:
    step name -> ``section`` or ``section.key`` names), so that a step's cache key changes only with them:
    ``eval.smoothing`` re-runs the evaluation, not extraction or training. This is the one step that sees
    the whole mapping."""
    from cplvad.config import config_from_params, select_keys

    config_from_params(params, [], "the pipeline parameter 'params'")
    names = (
        "prepare_data",
        "extract",
        "train_stage1",
        "pseudo_labels",
        "train_stage2",
        "evaluate",
        "data",
        "open_run",
        "register",
        "ablation_table",
        "scoring",
    )
    return tuple(select_keys(params, steps[name]) for name in names)
