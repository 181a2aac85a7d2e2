"""The ablation pipeline: the paper's Table 3 grid (``cplvad.workflow.ablation.GRID``) on one dataset.

One stage-1 model and its pseudo labels (with and without CAR) are shared by every row; the stage-2 rows
run in parallel (a ParallelFor per pseudo-label variant, since each variant feeds other rows), each a
training and an evaluation; the evaluations are Collected into one comparison table (``ablation_table``).
"""

from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Markdown

import components as c
from cplvad.workflow.ablation import GRID
from pipelines import common
from pipelines.common import (
    DEFAULT_ACCELERATOR_TYPE,
    DEFAULT_SECRET,
    add_features,
    default_params,
    described,
    evaluation,
    gpu_training,
    sized,
    split,
)

NAME = "cplvad-ablation"
DEFAULT_PARAMS = default_params()
STAGE1_ROW = next(r for r in GRID if r.supervision is None)
CAR_ROWS = [
    {"label": r.label, "supervision": r.supervision} for r in GRID if r.supervision is not None and r.car
]
NOCAR_ROWS = [
    {"label": r.label, "supervision": r.supervision} for r in GRID if r.supervision is not None and not r.car
]


class Outputs(NamedTuple):
    table: Markdown
    results: Dataset
    report: HTML


def ablation(
    params: dict = DEFAULT_PARAMS,
    source_uri: str = "",
    features_uri: str = "",
    num_shards: int = 4,
    accelerator_type: str = DEFAULT_ACCELERATOR_TYPE,
    accelerator_count: int = 1,
    track: bool = True,
    secret_name: str = DEFAULT_SECRET,
    checkpoint_uri: str = "",
) -> Outputs:
    """Parameters as in the training pipeline; ``track``: log one MLflow parent run with a child per row."""
    step = split(params, secret_name)
    feats = add_features(
        step, source_uri, features_uri, num_shards, accelerator_type, accelerator_count, secret_name
    )
    dataset = feats.dataset

    stage1 = c.train_stage1(
        dataset=dataset, params=step.outputs["train_stage1"], checkpoint_uri=checkpoint_uri
    )
    gpu_training(stage1, "train stage 1 (shared)", secret_name, accelerator_type, accelerator_count)
    stage1_eval = evaluation(
        dataset,
        stage1.outputs["model"],
        step.outputs["evaluate"],
        STAGE1_ROW.label,
        "evaluate stage 1",
        secret_name,
    )
    pseudo = {}
    for car in (True, False):
        task = sized(
            c.pseudo_labels(
                dataset=dataset,
                stage1=stage1.outputs["model"],
                params=step.outputs["pseudo_labels"],
                overrides=[f"car.enabled={'true' if car else 'false'}"],
            ),
            "compute",
            secret_name,
        )
        task.set_display_name(f"pseudo labels (CAR {'on' if car else 'off'})")
        pseudo[car] = task.outputs["pseudo"]

    evaluations = {}
    for car, rows in ((True, CAR_ROWS), (False, NOCAR_ROWS)):
        # at most MAX_PARALLEL_ROWS stage-2 trainings (GPU pods) at once (read when traced: --max-parallel-rows)
        with dsl.ParallelFor(
            rows, name=f"grid-car-{'on' if car else 'off'}", parallelism=common.MAX_PARALLEL_ROWS
        ) as row:
            model = c.train_stage2(
                dataset=dataset,
                pseudo=pseudo[car],
                params=step.outputs["train_stage2"],
                supervision=row.supervision,
                checkpoint_uri=checkpoint_uri,
            )
            gpu_training(model, "train stage 2 (grid row)", secret_name, accelerator_type, accelerator_count)
            row_eval = evaluation(
                dataset,
                model.outputs["model"],
                step.outputs["evaluate"],
                row.label,
                "evaluate (grid row)",
                secret_name,
            )
        evaluations[car] = dsl.Collected(row_eval.outputs["evaluation"])

    table = sized(
        c.ablation_table(
            dataset=dataset,
            stage1=stage1_eval.outputs["evaluation"],
            car_rows=evaluations[True],
            nocar_rows=evaluations[False],
            params=step.outputs["ablation_table"],
            track=track,
        ),
        "light",
        secret_name,
    )
    table.set_display_name("ablation table")
    table.set_caching_options(False)  # logs to MLflow
    return Outputs(table.outputs["table"], table.outputs["results"], table.outputs["report"])


DESCRIPTION = (
    "CPL-VAD ablation (paper Table 3): shared stage 1 and pseudo labels, the stage-2 variants "
    "in parallel, one comparison table."
)


def build() -> Any:
    """The pipeline, traced now: tasks take the components' image at this moment (see ``components.set_image``)."""
    return dsl.pipeline(name=NAME, description=described(DESCRIPTION))(ablation)
