"""The figures a physicist looks at after training, as matplotlib Figures (no I/O here).

Used by training (logged to MLflow as artifacts) and by notebooks/02_model.ipynb. No backend is
forced here: headless processes get Agg by default, a notebook keeps its inline backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from numpy.typing import NDArray

Array = NDArray[Any]


def close(figure: Figure) -> None:
    """Free a figure's memory once it has been saved (pyplot keeps every figure alive)."""
    plt.close(figure)


def error_histograms(
    model_errors: Array, linefit_errors: Array, event_types: Array | None, label: str = "model"
) -> Figure:
    """Angular-error distributions, model vs LineFit, overall and per event type."""
    groups: list[tuple[str, Array]] = [("all", np.ones(model_errors.size, dtype=bool))]
    if event_types is not None:
        groups += [(str(t), event_types == t) for t in sorted({str(t) for t in event_types})]
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.2), squeeze=False)
    bins = np.linspace(0.0, np.pi, 46)
    for ax, (name, mask) in zip(axes[0], groups, strict=True):
        for errors, what in ((linefit_errors, "LineFit"), (model_errors, label)):
            e = errors[mask]
            ax.hist(e, bins=bins, histtype="step", label=f"{what} mean {e.mean():.3f}")
        ax.set_title(f"{name} ({int(mask.sum())} events)")
        ax.set_xlabel("angular error (rad)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def error_vs(
    x: Array,
    model_errors: Array,
    linefit_errors: Array,
    xlabel: str,
    log_x: bool = True,
    label: str = "model",
) -> Figure:
    """Mean and median angular error in bins of x (energy, number of pulses)."""
    xv = np.asarray(x, dtype=np.float64)
    edges = (
        np.geomspace(max(xv.min(), 1e-9), xv.max() * 1.0001, 13)
        if log_x
        else np.linspace(xv.min(), xv.max() * 1.0001, 13)
    )
    which = np.clip(np.digitize(xv, edges) - 1, 0, edges.size - 2)
    centres = np.sqrt(edges[:-1] * edges[1:]) if log_x else 0.5 * (edges[:-1] + edges[1:])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for errors, what in ((linefit_errors, "LineFit"), (model_errors, label)):
        mean = [errors[which == i].mean() if (which == i).any() else np.nan for i in range(12)]
        median = [
            np.median(errors[which == i]) if (which == i).any() else np.nan for i in range(12)
        ]
        (line,) = ax.plot(centres, mean, marker="o", label=f"{what} mean")
        ax.plot(centres, median, ls="--", color=line.get_color(), label=f"{what} median")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("angular error (rad)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def model_vs_linefit(model_errors: Array, linefit_errors: Array, label: str = "model") -> Figure:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(linefit_errors, model_errors, s=2, alpha=0.3)
    ax.plot([0, np.pi], [0, np.pi], color="k", lw=0.8)
    ax.set_xlabel("LineFit error (rad)")
    ax.set_ylabel(f"{label} error (rad)")
    better = float(np.mean(model_errors < linefit_errors))
    ax.set_title(f"{label} better on {better:.0%} of events")
    fig.tight_layout()
    return fig


def calibration_curve(levels: Sequence[float], observed: Sequence[float]) -> Figure:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="k", lw=0.8, label="perfect")
    ax.plot(levels, observed, marker="o", label="model")
    ax.set_xlabel("predicted containment (vMF)")
    ax.set_ylabel("observed fraction of events")
    ax.legend()
    fig.tight_layout()
    return fig


def sky_map(azimuth: Array, zenith: Array, title: str = "predicted directions") -> Figure:
    """Predicted source directions on a Mollweide projection (longitude = azimuth - pi)."""
    fig = plt.figure(figsize=(7, 4))
    ax = fig.add_subplot(111, projection="mollweide")
    ax.scatter(np.asarray(azimuth) - np.pi, np.pi / 2 - np.asarray(zenith), s=1, alpha=0.3)
    ax.set_title(title)
    ax.grid(True)
    fig.tight_layout()
    return fig
