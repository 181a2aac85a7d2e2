"""Kubeflow pipelines of CPL-VAD: ``training`` (end to end), ``ablation`` (paper Table 3) and ``scoring``
(a bucket of footage scored with a registered model).

``python -m pipelines compile | run-local | submit`` (see ``python -m pipelines --help`` and the README's
"Kubeflow" section). The components are in ``components/``; the library in ``src/cplvad``.
"""

from pipelines import ablation, scoring, training
from pipelines.ablation import ablation_pipeline
from pipelines.scoring import scoring_pipeline
from pipelines.training import training_pipeline

PIPELINES = {"training": training_pipeline, "ablation": ablation_pipeline, "scoring": scoring_pipeline}
BUILDERS = {"training": training.build, "ablation": ablation.build, "scoring": scoring.build}


def build(name: str):
    """Trace pipeline ``name`` again, e.g. after ``components.set_image``."""
    return BUILDERS[name]()


__all__ = ["BUILDERS", "PIPELINES", "ablation_pipeline", "build", "scoring_pipeline", "training_pipeline"]
