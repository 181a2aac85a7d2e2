"""Timeline PNG of one prediction: anomaly score over time with the threshold, detected events shaded and
labelled with their class, and below it a strip of the per-snippet class probabilities (one row per class).

The x axis is seconds when the frame rate is known, else frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from cplvad.eval.events import Event
from cplvad.eval.plots import draw_scores, save_png
from cplvad.io import printable

CLASS_COLOURS = colormaps["tab10"].colors


def _colour(index: int) -> tuple[float, ...]:
    return CLASS_COLOURS[(index + 2) % len(CLASS_COLOURS)]  # skip the blue / orange of the score lines


def timeline_figure(
    binary: np.ndarray,
    classes: np.ndarray,
    class_names: Sequence[str],
    events: Sequence[Event],
    threshold: float,
    frames_per_snippet: int,
    fps: float | None,
    title: str,
) -> Figure:
    m = len(class_names)
    fig = Figure(figsize=(10, 3.2 + 0.22 * m))
    ax, strip = fig.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, max(1.0, 0.3 * m)], "hspace": 0.08}
    )
    scale = 1.0 / fps if fps else 1.0
    draw_scores(ax, binary, classes, frames_per_snippet, scale)
    ax.axhline(threshold, color="tab:red", lw=0.9, ls=":", label=f"threshold {threshold:.3f}")
    for e in events:
        k = class_names.index(e.label)
        x0, x1 = e.start_frame * scale, e.end_frame * scale
        ax.axvspan(x0, x1, color=_colour(k), alpha=0.25, lw=0)
        ax.text(
            (x0 + x1) / 2,
            1.01,
            f"{e.label} {e.score:.2f}",
            ha="center",
            va="bottom",
            fontsize=7,
            color=_colour(k),
            fontweight="bold",
            clip_on=False,
            transform=ax.get_xaxis_transform(),
        )
    ax.set_ylabel("anomaly score", fontsize=8)
    ax.legend(loc="upper left", fontsize=7, ncols=3, framealpha=0.6)
    ax.set_title(printable(title), fontsize=9, loc="left", pad=14)

    end = len(binary) * frames_per_snippet * scale
    image = strip.imshow(
        classes.T,
        aspect="auto",
        interpolation="nearest",
        cmap="magma",
        vmin=0,
        vmax=1,
        extent=(0, end, m - 0.5, -0.5),
    )
    strip.set_yticks(range(m), list(class_names), fontsize=7)
    for k, label in enumerate(strip.get_yticklabels()):
        if k:
            label.set_color(_colour(k))
    strip.set_xlabel("time (s)" if fps else "frame", fontsize=8)
    cax = strip.inset_axes((1.005, 0.0, 0.012, 1.0))
    fig.colorbar(image, cax=cax).ax.tick_params(labelsize=6)
    cax.set_title("P", fontsize=7)
    strip.set_xlim(0, end)
    return fig


def write_timeline(path: str | Path, *args: object, **kwargs: object) -> Path:
    """``timeline_figure(...)`` written to ``path`` (PNG, atomically)."""
    return save_png(timeline_figure(*args, **kwargs), path, bbox_inches="tight")  # type: ignore[arg-type]
