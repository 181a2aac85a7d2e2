"""Kubeflow pipelines of CPL-VAD: ``training`` (end to end), ``ablation`` (paper Table 3) and ``scoring``
(a bucket of footage scored with a registered model).

``python -m pipelines compile | run-local | submit | deploy`` (see ``python -m pipelines --help`` and the README's
"Kubeflow" section). The components are in ``components/``; the library in ``src/cplvad``.

A pipeline is traced when it is first asked for (``pipeline(name)``, or ``training_pipeline`` ...), not
when this package is imported: KFP inspects the whole call stack for every resource a task sets, which
costs seconds per pipeline, and minutes in a process that has many modules loaded (a test worker).
"""

from functools import cache
from importlib import import_module
from typing import Any

NAMES = ("training", "ablation", "scoring")


def build(name: str) -> Any:
    """Trace pipeline ``name`` now, e.g. again after ``components.set_image``."""
    if name not in NAMES:
        raise KeyError(f"no pipeline {name!r}; the pipelines are {', '.join(NAMES)}")
    return import_module(f"pipelines.{name}").build()


@cache
def pipeline(name: str) -> Any:
    """Pipeline ``name``, traced once per process, on first use."""
    return build(name)


def __getattr__(attr: str) -> Any:
    """``training_pipeline``, ``ablation_pipeline``, ``scoring_pipeline``: ``pipeline(name)``."""
    name = attr.removesuffix("_pipeline")
    if attr.endswith("_pipeline") and name in NAMES:
        return pipeline(name)
    raise AttributeError(f"module 'pipelines' has no attribute {attr!r}")


__all__ = ["NAMES", "build", "pipeline"]
