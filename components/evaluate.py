"""Evaluation components: one model on the test list (published protocol), and the ablation table."""

from typing import Optional

from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import component


@component
def evaluate(
    dataset: Input[Dataset],
    model: Input[Model],
    params: dict,
    metrics: Output[Metrics],
    evaluation: Output[Artifact],
    report: Output[HTML],
    label: str = "",
    tracking_uri: str = "",
    overrides: Optional[list] = None,
):
    """Score the test list and compute the published metrics (``cplvad evaluate``).

    ``metrics``: the scalars (shown by the KFP UI; the file is metrics.json); ``evaluation``: metrics.json, predictions.npz, plots/
    and summary.json (``label`` + metrics, read by the ablation table); ``report``: an HTML page with both.
    """
    from pathlib import Path

    from cplvad.config import config_from_params
    from cplvad.eval.html_report import evaluation_page
    from cplvad.io import write_json
    from cplvad.tracking.pipeline_run import find_parent
    from cplvad.tracking.runs import use_tracking_uri
    from cplvad.workflow import evaluate_into

    config = config_from_params(params, overrides or [], "the pipeline parameter 'params'")
    use_tracking_uri(tracking_uri)
    result = evaluate_into(
        Path(dataset.path) / "dataset.yaml",
        model.path,
        config,
        evaluation.path,
        label=label,
        parent_run=find_parent(config),
    )
    for key, value in result.metrics.items():
        if value is not None:
            metrics.log_metric(key, float(value))
    write_json(metrics.path, result.metrics)
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
    tracking_uri: str,
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

    from cplvad.config import config_from_params
    from cplvad.eval.html_report import ablation_page
    from cplvad.tracking.runs import use_tracking_uri
    from cplvad.workflow import read_summary
    from cplvad.workflow.ablation import grid_rows, track_ablation, write_reports

    config = config_from_params(params, overrides or [], "the pipeline parameter 'params'")
    rows = grid_rows(dict(read_summary(item.path) for item in [stage1, *car_rows, *nocar_rows]))
    out = Path(results.path)
    write_reports(rows, out)
    markdown = (out / "ablation.md").read_text()
    Path(table.path).write_text("# Ablation (paper Table 3)\n\n" + markdown)
    Path(report.path).write_text(ablation_page(markdown, out / "ablation.png"))
    if track:
        use_tracking_uri(tracking_uri)
        track_ablation(rows, out, Path(dataset.path) / "dataset.yaml", config)
    print(markdown)
