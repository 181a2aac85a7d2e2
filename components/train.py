"""Training components: stage 1, pseudo labels (CAR) and stage 2 (``cplvad.workflow``).

Each takes the merged ``dataset`` artifact and the configuration as ``params`` (the params.yaml mapping)
plus optional ``overrides`` (``section.key=value`` strings, as ``--set``).
"""

from typing import Optional

from kfp.dsl import Dataset, Input, Model, Output

from components.image import component


@component
def train_stage1(dataset: Input[Dataset], params: dict, model: Output[Model], overrides: Optional[list] = None):
    """The pseudo-label model, from video-level labels only (``cplvad train --stage 1``)."""
    from pathlib import Path

    from cplvad.config import apply_overrides, config_from_dict
    from cplvad.workflow import train_stage

    config = config_from_dict(apply_overrides(dict(params), overrides or []), "the pipeline parameter 'params'")
    result = train_stage(Path(dataset.path) / "dataset.yaml", model.path, config, stage=1, progress=False)
    last = result.history[-1] if result.history else {}
    model.metadata.update({"stage": 1, "framework": "pytorch", "epochs": len(result.history),
                           "seconds": round(result.seconds, 1), **{f"final_{k}": v for k, v in last.items() if k != "epoch"}})


@component
def pseudo_labels(
    dataset: Input[Dataset], stage1: Input[Model], params: dict, pseudo: Output[Dataset],
    overrides: Optional[list] = None,
):
    """Pseudo labels of every training sample from the stage-1 model, refined by CAR (``config.car``);
    written as ``pseudo.npz`` inside the artifact (``cplvad pseudo-labels``)."""
    from pathlib import Path

    from cplvad.config import apply_overrides, config_from_dict
    from cplvad.workflow import PSEUDO_FILE, make_pseudo_labels

    config = config_from_dict(apply_overrides(dict(params), overrides or []), "the pipeline parameter 'params'")
    Path(pseudo.path).mkdir(parents=True, exist_ok=True)
    labels = make_pseudo_labels(Path(dataset.path) / "dataset.yaml", stage1.path,
                                config, out=Path(pseudo.path) / PSEUDO_FILE, progress=False)
    pseudo.metadata.update({"car_enabled": config.car.enabled, **labels.stats()})


@component
def train_stage2(
    dataset: Input[Dataset], pseudo: Input[Dataset], params: dict, model: Output[Model], supervision: str = "",
    overrides: Optional[list] = None,
):
    """The final model, cross-supervised by the pseudo labels (``cplvad train --stage 2``);
    ``supervision`` (cross | b_to_c | c_to_b | self) overrides ``stage2.supervision`` when given."""
    from pathlib import Path

    from cplvad.config import apply_overrides, config_from_dict
    from cplvad.workflow import PSEUDO_FILE, train_stage

    extra = [f"stage2.supervision={supervision}"] if supervision else []
    config = config_from_dict(apply_overrides(dict(params), [*(overrides or []), *extra]),
                              "the pipeline parameter 'params'")
    result = train_stage(Path(dataset.path) / "dataset.yaml", model.path, config, stage=2,
                         pseudo_path=Path(pseudo.path) / PSEUDO_FILE, progress=False)
    last = result.history[-1] if result.history else {}
    model.metadata.update({"stage": 2, "framework": "pytorch", "supervision": config.stage2.supervision,
                           "epochs": len(result.history), "seconds": round(result.seconds, 1),
                           **{f"final_{k}": v for k, v in last.items() if k != "epoch"}})
