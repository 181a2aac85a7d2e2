"""What every Kubeflow step that works on the merged dataset starts from: its config (the ``params`` it is
handed plus its ``overrides``, as ``--set``), the dataset artifact's manifest and the pipeline's MLflow parent
run. One place, so that the components (``components/``) stay thin wrappers of the ``workflow`` functions.
Import-light (MLflow is loaded only when the parent run is asked for): the light steps use it too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cplvad.config import Config, config_from_params
from cplvad.data.selection import MANIFEST_FILE

PARAMS_SOURCE = "the pipeline parameter 'params'"


def step_config(params: Mapping[str, Any], overrides: list[str] | None = None) -> Config:
    """A step's config from the pipeline's ``params`` (its part of them) and ``overrides``."""
    return config_from_params(params, overrides or [], PARAMS_SOURCE)


@dataclass(frozen=True)
class PipelineStep:
    """A step on the dataset artifact at ``dataset_dir`` with ``config``."""

    config: Config
    dataset_dir: str

    @property
    def manifest(self) -> Path:
        """The artifact's ``dataset.yaml``."""
        return Path(self.dataset_dir) / MANIFEST_FILE

    @cached_property
    def parent_run(self) -> str | None:
        """The pipeline's MLflow parent run (``$CPLVAD_PIPELINE_RUN``), if any."""
        from cplvad.tracking.pipeline_run import find_parent

        return find_parent(self.config)


def pipeline_step(
    params: Mapping[str, Any], dataset_dir: str, overrides: list[str] | None = None
) -> PipelineStep:
    return PipelineStep(step_config(params, overrides), dataset_dir)
