"""Evaluation components: one model on the test list (published protocol), and the ablation table."""

from typing import Optional

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import component


@component
def evaluate(
    dataset: Input[Dataset],
    model: Input[Model],
    params: dict,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    evaluation: Output[Artifact],
    report: Output[HTML],
    label: str = "",
    overrides: Optional[list] = None,
):
    """Score the test list and compute the published metrics (``cplvad evaluate``).

    ``metrics``: the scalars (shown by the KFP UI; the file is metrics.json); ``classification``: the anomaly
    score as a frame classifier, its ROC curve and the confusion matrix at the model's calibrated threshold
    (drawn by the KFP UI); ``evaluation``: metrics.json, predictions.npz, plots/ and summary.json (``label`` +
    metrics, read by the ablation table); ``report``: an HTML page with both.
    """
    from pathlib import Path

    from cplvad.eval.classification import CATEGORIES, frame_classification
    from cplvad.eval.html_report import evaluation_page
    from cplvad.io import write_json
    from cplvad.pipeline_step import pipeline_step
    from cplvad.workflow import evaluate_into

    step = pipeline_step(params, dataset.path, overrides)
    result = evaluate_into(
        step.manifest, model.path, step.config, evaluation.path, label=label, parent_run=step.parent_run
    )
    for key, value in result.metrics.items():
        if value is not None:
            metrics.log_metric(key, float(value))
    write_json(metrics.path, result.metrics)
    frames = frame_classification(step.manifest, result.predictions, model.path)
    if frames.fpr:
        classification.log_roc_curve(frames.fpr, frames.tpr, frames.thresholds)
    if frames.matrix:
        classification.log_confusion_matrix(CATEGORIES, frames.matrix)
        classification.metadata["threshold"] = frames.threshold
    evaluation.metadata.update({"label": label})
    Path(report.path).write_text(
        evaluation_page(
            result.metrics,
            title=label or "CPL-VAD evaluation",
            model=model.uri,
            timelines=Path(evaluation.path) / "plots" / "timelines.png",
        )
    )


@component
def ablation_table(
    dataset: Input[Dataset],
    stage1: Input[Artifact],
    car_rows: Input[list[Artifact]],
    nocar_rows: Input[list[Artifact]],
    params: dict,
    track: bool,
    table: Output[Markdown],
    results: Output[Dataset],
    report: Output[HTML],
    overrides: Optional[list] = None,
):
    """The paper's Table 3 from the evaluations of the grid rows (``cplvad ablate``'s report):
    ablation.md/.csv/.png in ``results``, the table as ``table`` and an HTML page with the chart; with
    ``track``, one MLflow parent run with a child run per row."""
    from pathlib import Path

    from cplvad.eval.html_report import ablation_page
    from cplvad.pipeline_step import pipeline_step
    from cplvad.workflow import read_summary
    from cplvad.workflow.ablation import grid_rows, track_ablation, write_reports

    step = pipeline_step(params, dataset.path, overrides)
    rows = grid_rows(dict(read_summary(item.path) for item in [stage1, *car_rows, *nocar_rows]))
    out = Path(results.path)
    write_reports(rows, out)
    markdown = (out / "ablation.md").read_text()
    Path(table.path).write_text("# Ablation (paper Table 3)\n\n" + markdown)
    Path(report.path).write_text(ablation_page(markdown, out / "ablation.png"))
    if track:
        track_ablation(rows, out, step.manifest, step.config)
    print(markdown)
