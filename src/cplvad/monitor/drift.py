"""``cplvad monitor OUT``: has a source's score distribution moved away from the one the threshold was set on?

The reference is the model's calibration histogram: the snippet scores of the normal training videos, on
which the threshold was calibrated for ``predict.false_alarm_rate`` (``meta.json``
``extra.calibration.histogram``). Deployed footage is overwhelmingly normal, so a source whose daily
histogram (``cplvad.monitor.histograms``) departs from it has changed (a moved camera, new lighting, a
dirty lens, another codec), and the calibrated false-alarm rate no longer holds there.

Per source and day: the population stability index ``PSI = sum((p - q) ln(p / q))`` over the ``BINS`` bins
(p the day's share of snippets in a bin, q the reference's; both at least half a snippet of the reference,
``0.5 / N_ref``, so that an empty bin stays finite, bins empty in both add nothing, and a few snippets in
a bin the calibration never filled count only beyond what its size can tell) and the Kolmogorov-Smirnov statistic of the binned distributions (the largest gap
between the two cumulative shares). A day drifts when its PSI exceeds ``monitor.psi_threshold`` (0.2) and
it holds at least ``monitor.min_snippets`` snippets; the KS statistic is shown beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from cplvad.config import MonitorConfig
from cplvad.errors import DataError
from cplvad.modeling.factory import CALIBRATION_KEY, read_model_config
from cplvad.monitor.histograms import BINS, EDGES, DayHistogram


@dataclass(frozen=True)
class DayDrift:
    day: DayHistogram
    psi: float
    ks: float
    drifted: bool
    enough: bool
    """At least ``monitor.min_snippets`` snippets: judged at all."""

    @property
    def mean_score(self) -> float:
        centres = (EDGES[:-1] + EDGES[1:]) / 2
        return float(np.dot(self.day.counts, centres) / max(self.day.snippets, 1))


def shares(counts: Sequence[int] | np.ndarray, floor: float = 0.0) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    return np.maximum(c / max(c.sum(), 1.0), floor)


def psi(observed: Sequence[int] | np.ndarray, expected: Sequence[int] | np.ndarray) -> float:
    """Population stability index of ``observed`` counts against ``expected`` counts (same bins), every
    share at least half a snippet of ``expected``."""
    floor = 0.5 / max(float(np.sum(expected)), 1.0)
    p, q = shares(observed, floor), shares(expected, floor)
    return float(np.sum((p - q) * np.log(p / q)))


def ks_statistic(observed: Sequence[int] | np.ndarray, expected: Sequence[int] | np.ndarray) -> float:
    """The largest gap between the cumulative distributions of two binned samples."""
    a, b = np.asarray(observed, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return float(np.max(np.abs(np.cumsum(a) / max(a.sum(), 1) - np.cumsum(b) / max(b.sum(), 1))))


def calibration_histogram(model_dir: str | Path) -> np.ndarray:
    """The model's reference histogram; DataError for a model calibrated before it was kept."""
    _, meta = read_model_config(model_dir)
    counts = (meta.extra.get(CALIBRATION_KEY) or {}).get("histogram")
    if not counts or len(counts) != BINS:
        raise DataError(
            f"model {model_dir} keeps no calibration histogram (it was calibrated before cplvad recorded "
            "one): retrain it with this version, or pass --model with a model that has one"
        )
    return np.asarray(counts, dtype=np.int64)


class References:
    """The calibration histogram a day is compared with: that of ``override`` (a model directory or registry
    URI) when given, else of the model that scored the day (its directory when it is still there, else its
    registry URI); each model read once. ``resolve`` turns a model directory or registry URI into a local
    model directory (the command passes ``tracking.registry.resolve_model``: monitoring stays below
    tracking)."""

    def __init__(self, resolve: Callable[[str], Path], override: str | None = None) -> None:
        self.resolve = resolve
        self.override = override
        self._by_version: dict[str, np.ndarray] = {}

    def __call__(self, day: DayHistogram) -> np.ndarray:
        key = str(day.model.get("version"))
        if key not in self._by_version:
            self._by_version[key] = calibration_histogram(self._model_dir(day))
        return self._by_version[key]

    def _model_dir(self, day: DayHistogram) -> Path:
        if self.override is not None:
            return self.resolve(self.override)
        path, source = day.model.get("path"), day.model.get("source")
        if path and (Path(path) / "meta.json").is_file():
            return Path(path)
        if source:
            return self.resolve(str(source))
        raise DataError(f"the histograms of {day.source} name no model; pass --model")


def compare(
    days: list[DayHistogram], reference: Callable[[DayHistogram], np.ndarray], settings: MonitorConfig
) -> list[DayDrift]:
    """Each source's last ``settings.days`` days against ``reference(day)``, sorted by source and day."""
    by_source: dict[str, list[DayHistogram]] = {}
    for day in sorted(days, key=lambda d: (d.source, d.day)):
        by_source.setdefault(day.source, []).append(day)
    out = []
    for source_days in by_source.values():
        for day in source_days[-settings.days :]:
            expected = reference(day)
            value = psi(day.counts, expected)
            enough = day.snippets >= settings.min_snippets
            out.append(
                DayDrift(
                    day,
                    value,
                    ks_statistic(day.counts, expected),
                    enough and value > settings.psi_threshold,
                    enough,
                )
            )
    return out


def drift_table(rows: list[DayDrift], threshold: float) -> Table:
    models = sorted({str(r.day.model.get("version")) for r in rows})
    table = Table(
        title=f"score drift against the calibration distribution (PSI > {threshold:g} = drift)",
        caption=f"model {', '.join(models)}",
    )
    for name in ("source", "day", "snippets", "mean", "PSI", "KS", "status"):
        table.add_column(name, justify="left" if name in ("source", "day", "status") else "right")
    for r in rows:
        status = "[bold red]DRIFT[/]" if r.drifted else ("ok" if r.enough else "too few")
        table.add_row(
            r.day.source,
            r.day.day,
            f"{r.day.snippets:,}",
            f"{r.mean_score:.3f}",
            f"{r.psi:.3f}",
            f"{r.ks:.3f}",
            status,
        )
    return table


def alerts(rows: list[DayDrift], threshold: float) -> list[dict[str, Any]]:
    """One webhook message per drifted source: its latest drifted day, and every drifted day shown."""
    out = []
    for source in sorted({r.day.source for r in rows if r.drifted}):
        drifted = [r for r in rows if r.drifted and r.day.source == source]
        last = drifted[-1]
        out.append(
            {
                "type": "drift",
                "source": source,
                "day": last.day.day,
                "psi": round(last.psi, 4),
                "ks": round(last.ks, 4),
                "psi_threshold": threshold,
                "snippets": last.day.snippets,
                "model_version": last.day.model.get("version"),
                "days_drifted": [r.day.day for r in drifted],
            }
        )
    return out


def plot_drift(
    rows: list[DayDrift], reference: Callable[[DayHistogram], np.ndarray], threshold: float, path: Path
) -> Path:
    """Per source: the reference distribution against the latest day's, and the PSI of each day shown
    (a PNG written atomically)."""
    from matplotlib.figure import Figure

    from cplvad.eval.plots import save_png

    sources = sorted({r.day.source for r in rows})
    fig = Figure(figsize=(11, 2.8 * len(sources)))
    axes = fig.subplots(len(sources), 2, squeeze=False)
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    for (left, right), source in zip(axes, sources, strict=True):
        days = [r for r in rows if r.day.source == source]
        last = days[-1]
        left.bar(centres, shares(reference(last.day)), width=1 / BINS, alpha=0.4, label="calibration")
        left.step(
            centres,
            shares(last.day.counts),
            where="mid",
            color="C3" if last.drifted else "C0",
            label=last.day.day,
        )
        left.set_yscale("log")
        left.set(xlabel="anomaly score", ylabel="share of snippets", title=f"{source}: score distribution")
        left.legend(fontsize=8)
        x = np.arange(len(days))
        right.plot(x, [r.psi for r in days], marker="o", color="C0")
        marked = [i for i, r in enumerate(days) if r.drifted]
        right.scatter(marked, [days[i].psi for i in marked], color="C3", zorder=3, label="drift")
        right.axhline(threshold, color="C3", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        right.set_xticks(x, [r.day.day for r in days], rotation=30, fontsize=7)
        right.set(
            ylabel="PSI",
            title=f"{source}: PSI per day",
            ylim=(0, 1.1 * max(1.5 * threshold, *(r.psi for r in days))),
        )
        right.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)
