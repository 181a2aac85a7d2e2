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
    overrides: Optional[list] = None,
):
    """Score the test list and compute the published metrics (``cplvad evaluate``).

    ``metrics``: the scalars (shown by the KFP UI; the file is metrics.json); ``evaluation``: a folder with
    metrics.json, predictions.npz, plots/ (ROC/PR curve CSVs, score timelines) and summary.json
    (``label`` + metrics, read by the ablation table); ``report``: an HTML page with both.
    """
    import base64
    import html
    import json
    from pathlib import Path

    from cplvad.config import apply_overrides, config_from_dict
    from cplvad.workflow import METRICS_FILE, PREDICTIONS_FILE
    from cplvad.workflow import evaluate as run_evaluation

    config = config_from_dict(apply_overrides(dict(params), overrides or []), "the pipeline parameter 'params'")
    out = Path(evaluation.path)
    out.mkdir(parents=True, exist_ok=True)
    result = run_evaluation(Path(dataset.path) / "dataset.yaml", model.path, config, metrics_out=out / METRICS_FILE, predictions_out=out / PREDICTIONS_FILE, progress=False, plots_dir=out / "plots")
    values = result.metrics
    for key, value in values.items():
        if value is not None:
            metrics.log_metric(key, float(value))
    Path(metrics.path).write_text(json.dumps(values, indent=2))
    (out / "summary.json").write_text(json.dumps({"label": label, "model": model.uri, "metrics": values}, indent=2))
    evaluation.metadata.update({"label": label})

    title = html.escape(label or "CPL-VAD evaluation")
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{'n/a' if v is None else f'{v:.2f}'}</td></tr>"
                   for k, v in values.items())
    timeline = out / "plots" / "timelines.png"
    image = (f'<img alt="score timelines" src="data:image/png;base64,{base64.b64encode(timeline.read_bytes()).decode()}">'
             if timeline.is_file() else "")
    Path(report.path).write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<h2>{title}</h2><p>Model {html.escape(model.uri)}; metrics in percent (published protocol).</p>"
        f"<table border='1' cellpadding='4'><tr><th>metric</th><th>value</th></tr>{rows}</table>"
        f"<h3>Anomaly scores over time</h3>{image}</body></html>"
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
    import base64
    import json
    import os
    from pathlib import Path

    from cplvad.config import apply_overrides, config_from_dict
    from cplvad.workflow.ablation import GRID, track_ablation, write_reports

    config = config_from_dict(apply_overrides(dict(params), overrides or []), "the pipeline parameter 'params'")
    summaries = {}
    for item in [stage1, *car_rows, *nocar_rows]:
        summary = json.loads((Path(item.path) / "summary.json").read_text())
        summaries[summary["label"]] = summary["metrics"]
    missing = [row.label for row in GRID if row.label not in summaries]
    if missing:
        raise RuntimeError(f"no evaluation for the ablation rows {missing}; got {sorted(summaries)}")
    rows = [{"row": row.label, "supervision": row.supervision or "none", "car": row.car, **summaries[row.label]}
            for row in GRID]
    out = Path(results.path)
    out.mkdir(parents=True, exist_ok=True)
    write_reports(rows, out)
    markdown = (out / "ablation.md").read_text()
    Path(table.path).write_text("# Ablation (paper Table 3)\n\n" + markdown)
    chart = base64.b64encode((out / "ablation.png").read_bytes()).decode()
    Path(report.path).write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Ablation</title></head><body>"
        f"<h2>Ablation (paper Table 3)</h2><pre>{markdown}</pre>"
        f"<img alt='ablation chart' src='data:image/png;base64,{chart}'></body></html>"
    )
    if track:
        if tracking_uri:
            os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
        track_ablation(rows, out, Path(dataset.path) / "dataset.yaml", config)
    print(markdown)
