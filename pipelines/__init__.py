"""Kubeflow pipelines of CPL-VAD: ``training`` (end to end) and ``ablation`` (paper Table 3).

``python -m pipelines compile | run-local | submit`` (see ``python -m pipelines --help`` and the README's
"Kubeflow" section). The components are in ``components/``; the library in ``src/cplvad``.
"""

from pipelines import ablation, training
from pipelines.ablation import ablation_pipeline
from pipelines.training import training_pipeline

PIPELINES = {"training": training_pipeline, "ablation": ablation_pipeline}
BUILDERS = {"training": training.build, "ablation": ablation.build}


def build(name: str):
    """Trace pipeline ``name`` again, e.g. after ``components.set_image``."""
    return BUILDERS[name]()


__all__ = ["BUILDERS", "PIPELINES", "ablation_pipeline", "build", "training_pipeline"]
