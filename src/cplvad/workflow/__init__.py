"""The method's stages as functions on paths (``stages``) and the paper's ablation grid (``ablation``),
shared by the CLI, the DVC stages and the Kubeflow components."""

from cplvad.workflow.stages import (
    METRICS_FILE,
    PREDICTIONS_FILE,
    PSEUDO_FILE,
    TRACKING_FILE,
    Evaluation,
    evaluate,
    evaluate_into,
    make_pseudo_labels,
    outputs_in_folders,
    read_summary,
    run_all,
    track_pipeline,
    train_stage,
)

__all__ = [
    "METRICS_FILE",
    "PREDICTIONS_FILE",
    "PSEUDO_FILE",
    "TRACKING_FILE",
    "Evaluation",
    "evaluate",
    "evaluate_into",
    "make_pseudo_labels",
    "outputs_in_folders",
    "read_summary",
    "run_all",
    "track_pipeline",
    "train_stage",
]
