"""Self-contained HTML pages of results (images inlined), e.g. for the Kubeflow UI's HTML artifacts;
the HTML is in ``cplvad/templates/`` (``evaluation.html``, ``ablation.html``)."""

from __future__ import annotations

import base64
from pathlib import Path

from cplvad.templates import render


def _png(path: Path) -> str | None:
    """A PNG file in base64 for an inline image, or None when the file is absent."""
    return base64.b64encode(path.read_bytes()).decode() if path.is_file() else None


def evaluation_page(metrics: dict[str, float | None], *, title: str, model: str, timelines: Path) -> str:
    """The metrics as a table and the score timelines (``plots/timelines.png`` of an evaluation)."""
    return render("evaluation.html", title=title, model=model, metrics=metrics, image=_png(timelines))


def ablation_page(markdown: str, chart: Path) -> str:
    """The ablation table (as its Markdown text) and its bar chart."""
    return render("ablation.html", title="Ablation (paper Table 3)", markdown=markdown, image=_png(chart))
