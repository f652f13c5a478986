"""The figures a physicist looks at, as matplotlib Figures (no I/O here).

Used by training (logged to MLflow as artifacts), by `icecube-stream evaluate --plots` (through
`evaluation_plots.py`) and by notebooks/02_model.ipynb. Angles come in radians and are drawn in
degrees, for people. The LineFit baseline is optional: evaluating LineFit itself has none. No
backend is forced here: the CLI picks Agg, a notebook keeps its inline backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from numpy.typing import NDArray

Array = NDArray[Any]


def close(figure: Figure) -> None:
    """Free a figure's memory once it has been saved (pyplot keeps every figure alive)."""
    plt.close(figure)


def _curves(
    model_errors: Array, linefit_errors: Array | None, label: str
) -> list[tuple[Array, str]]:
    """(errors in degrees, name) to draw: the baseline first, so the model's colour is stable."""
    found = [] if linefit_errors is None else [(np.degrees(linefit_errors), "LineFit")]
    return [*found, (np.degrees(model_errors), label)]


def error_histograms(
    model_errors: Array,
    linefit_errors: Array | None,
    event_types: Array | None,
    label: str = "model",
) -> Figure:
    """Angular-error distributions, model vs LineFit, overall and per event type."""
    groups: list[tuple[str, Array]] = [("all", np.ones(model_errors.size, dtype=bool))]
    if event_types is not None:
        groups += [(str(t), event_types == t) for t in sorted({str(t) for t in event_types})]
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.2), squeeze=False)
    bins = np.linspace(0.0, 180.0, 46)
    for ax, (name, mask) in zip(axes[0], groups, strict=True):
        for errors, what in _curves(model_errors, linefit_errors, label):
            e = errors[mask]
            ax.hist(e, bins=bins, histtype="step", label=f"{what} mean {e.mean():.1f}°")
        ax.set_title(f"{name} ({int(mask.sum())} events)")
        ax.set_xlabel("angular error (degrees)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def error_vs(
    x: Array,
    model_errors: Array,
    linefit_errors: Array | None,
    xlabel: str,
    log_x: bool = True,
    label: str = "model",
    min_events: int = 10,
) -> Figure:
    """Mean and median angular error in bins of x (energy, number of pulses); bins of fewer than
    `min_events` events are left out, since a handful of events makes a misleading point."""
    xv = np.asarray(x, dtype=np.float64)
    edges = (
        np.geomspace(max(xv.min(), 1e-9), xv.max() * 1.0001, 13)
        if log_x
        else np.linspace(xv.min(), xv.max() * 1.0001, 13)
    )
    which = np.clip(np.digitize(xv, edges) - 1, 0, edges.size - 2)
    centres = np.sqrt(edges[:-1] * edges[1:]) if log_x else 0.5 * (edges[:-1] + edges[1:])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    filled = [int(np.sum(which == i)) >= max(min_events, 1) for i in range(12)]
    for errors, what in _curves(model_errors, linefit_errors, label):
        mean = [errors[which == i].mean() if filled[i] else np.nan for i in range(12)]
        median = [np.median(errors[which == i]) if filled[i] else np.nan for i in range(12)]
        (line,) = ax.plot(centres, mean, marker="o", label=f"{what} mean")
        ax.plot(centres, median, ls="--", color=line.get_color(), label=f"{what} median")
    if log_x:
        ax.set_xscale("log")
        shown = centres[np.asarray(filled)]
        if shown.size and shown.max() < 100 * shown.min():  # under two decades: 1-2-5 ticks
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^2, 3x10^2... would overlap
    ax.set_xlabel(xlabel)
    ax.set_ylabel("angular error (degrees)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def model_vs_linefit(model_errors: Array, linefit_errors: Array, label: str = "model") -> Figure:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(np.degrees(linefit_errors), np.degrees(model_errors), s=2, alpha=0.3)
    ax.plot([0, 180], [0, 180], color="k", lw=0.8)
    ax.set_xlabel("LineFit error (degrees)")
    ax.set_ylabel(f"{label} error (degrees)")
    better = float(np.mean(model_errors < linefit_errors))
    ax.set_title(f"{label} better on {better:.0%} of events")
    fig.tight_layout()
    return fig


def calibration_curve(
    levels: Sequence[float],
    observed: Sequence[float],
    marks: Mapping[str, tuple[float, float]] | None = None,
) -> Figure:
    """Observed vs predicted containment; `marks` adds named (expected, observed) points, such
    as the fractions within 1 and 2 sigma."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="k", lw=0.8, label="perfect")
    ax.plot(levels, observed, marker="o", label="model")
    for name, (expected, seen) in (marks or {}).items():
        ax.scatter([expected], [seen], s=60, marker="s", zorder=3, label=name)
    ax.set_xlabel("predicted containment (vMF)")
    ax.set_ylabel("observed fraction of events")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sky_map(
    azimuth: Array,
    zenith: Array,
    title: str = "predicted directions",
    true_azimuth: Array | None = None,
    true_zenith: Array | None = None,
) -> Figure:
    """Source directions on a Mollweide projection, ticks in azimuth / zenith degrees; with the
    truth, each prediction is joined to its true direction (unless the line would wrap)."""
    fig = plt.figure(figsize=(7, 4))
    ax = fig.add_subplot(111, projection="mollweide")
    lon, lat = np.asarray(azimuth) - np.pi, np.pi / 2 - np.asarray(zenith)
    if true_azimuth is not None and true_zenith is not None:
        true_lon, true_lat = np.asarray(true_azimuth) - np.pi, np.pi / 2 - np.asarray(true_zenith)
        joined = np.abs(lon - true_lon) < np.pi
        ax.plot(
            np.stack([true_lon[joined], lon[joined]]),
            np.stack([true_lat[joined], lat[joined]]),
            color="0.6",
            lw=0.4,
            alpha=0.5,
        )
        ax.scatter(true_lon, true_lat, s=4, color="k", label="true")
    ax.scatter(lon, lat, s=4, color="C1", alpha=0.7, label="predicted")
    ax.set_xticks(np.radians(np.arange(-150, 151, 60)))
    ax.set_xticklabels([f"{a}°" for a in range(30, 331, 60)])
    ax.set_yticks(np.radians(np.arange(-60, 61, 30)))
    ax.set_yticklabels([f"{z}°" for z in range(150, 29, -30)])
    ax.set_xlabel("azimuth")
    ax.set_ylabel("zenith")
    ax.set_title(title)
    ax.grid(True)
    if true_azimuth is not None:
        ax.legend(loc="lower right", fontsize=8, markerscale=3)
    fig.tight_layout()
    return fig
