"""KFP's local runner, taught to resolve ``dsl.OneOf`` over artifacts (``run-local``).

The data step ends in two branches (extract videos, or read published features) whose dataset artifacts
meet in a ``dsl.OneOf``. A cluster resolves that; KFP 2.17's local runner resolves ``OneOf`` over
parameters only and stops with "Expected 1 artifact in ArtifactSelectorSpec. Got: 2". ``allow_artifact_oneof``
applies the runner's own rule for parameters to artifacts: the output is the one branch that produced it.
Remove it once KFP's local runner does this itself.
"""

from __future__ import annotations

from typing import Any


def allow_artifact_oneof() -> None:
    """Let the local runner resolve a DAG output with several artifact selectors (a ``dsl.OneOf``)."""
    from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils

    OrchestratorUtils.get_dag_output_artifacts = classmethod(_dag_output_artifacts)


def _dag_output_artifacts(cls: type, dag_outputs_spec: Any, io_store: Any) -> dict[str, Any]:
    outputs = {}
    for key, spec in dag_outputs_spec.artifacts.items():
        selectors = list(spec.artifact_selectors)
        if len(selectors) == 1:  # an ordinary output: as KFP does it
            outputs[key] = io_store.get_task_output(
                selectors[0].producer_subtask, selectors[0].output_artifact_key
            )
            continue
        produced = []
        for selector in selectors:
            try:
                produced.append(
                    io_store.get_task_output(selector.producer_subtask, selector.output_artifact_key)
                )
            except (KeyError, ValueError):  # that branch did not run
                continue
        if len(produced) != 1:
            raise ValueError(
                f"dsl.OneOf output {key!r}: {len(produced)} branches produced it, expected exactly one"
            )
        outputs[key] = produced[0]
    return outputs
