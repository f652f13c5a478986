"""The PNG files of `icecube-stream evaluate --plots`: the figures of `plots.py` for one
evaluation, written to a folder.

A module of its own so that evaluation (`events.evaluate`) and serving never import matplotlib;
the caller picks the backend (the command line uses Agg).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from numpy.typing import NDArray

from icecube_stream.events.evaluate import Evaluation
from icecube_stream.model import plots

DPI = 100


def evaluation_figures(
    result: Evaluation, label: str, kappa: NDArray[Any] | None = None
) -> dict[str, Figure]:
    """File name -> figure. The calibration figure needs the model's kappa (LineFit has none);
    the sky map, the sample of directions the evaluation kept."""
    figures = {
        "error_by_type.png": plots.error_histograms(
            result.errors, result.baseline_errors, result.event_types, label=label
        ),
        "error_vs_pulses.png": plots.error_vs(
            result.pulse_counts,
            result.errors,
            result.baseline_errors,
            "pulses per event",
            label=label,
        ),
    }
    if kappa is not None:
        from icecube_stream.model.calibration import calibration_report  # loads torch

        cal = calibration_report(result.errors, kappa)
        figures["calibration.png"] = plots.calibration_curve(
            cal["curve"]["levels"],
            cal["curve"]["observed"],
            marks={
                "1 sigma": (cal["expected_within_1sigma"], cal["fraction_within_1sigma"]),
                "2 sigma": (cal["expected_within_2sigma"], cal["fraction_within_2sigma"]),
            },
        )
    if result.sample is not None:
        s = result.sample
        figures["sky.png"] = plots.sky_map(
            s.azimuth,
            s.zenith,
            title=f"{label}: predicted vs true directions ({s.azimuth.size} events)",
            true_azimuth=s.true_azimuth,
            true_zenith=s.true_zenith,
        )
    return figures


def write_evaluation_plots(
    result: Evaluation, out_dir: Path, label: str, kappa: NDArray[Any] | None = None
) -> list[Path]:
    """Save every figure of `evaluation_figures` as PNG in out_dir; the paths written."""
    if result.errors.size == 0:
        raise ValueError("no events were evaluated, so there is nothing to plot")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in evaluation_figures(result, label, kappa).items():
        path = out_dir / name
        figure.savefig(path, dpi=DPI)
        plots.close(figure)
        written.append(path)
    return written
