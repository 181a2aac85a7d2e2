"""Self-contained HTML pages of results (images inlined), e.g. for the Kubeflow UI's HTML artifacts."""

from __future__ import annotations

import base64
import html
from pathlib import Path

PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
    "<h2>{title}</h2>{body}</body></html>"
)


def _image(path: Path, alt: str) -> str:
    """An inline ``<img>`` of a PNG file, or nothing when the file is absent."""
    if not path.is_file():
        return ""
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}'>"


def evaluation_page(metrics: dict[str, float | None], *, title: str, model: str, timelines: Path) -> str:
    """The metrics as a table and the score timelines (``plots/timelines.png`` of an evaluation)."""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{'n/a' if v is None else f'{v:.2f}'}</td></tr>"
        for k, v in metrics.items()
    )
    body = (
        f"<p>Model {html.escape(model)}; metrics in percent (published protocol).</p>"
        f"<table border='1' cellpadding='4'><tr><th>metric</th><th>value</th></tr>{rows}</table>"
        f"<h3>Anomaly scores over time</h3>{_image(timelines, 'score timelines')}"
    )
    return PAGE.format(title=html.escape(title), body=body)


def ablation_page(markdown: str, chart: Path) -> str:
    """The ablation table (as its Markdown text) and its bar chart."""
    body = f"<pre>{html.escape(markdown)}</pre>{_image(chart, 'ablation chart')}"
    return PAGE.format(title="Ablation (paper Table 3)", body=body)
