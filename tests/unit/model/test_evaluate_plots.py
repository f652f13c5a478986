"""`icecube-stream evaluate --plots DIR`: PNG figures of one evaluation, their paths printed."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from icecube_stream.cli import app
from icecube_stream.events.evaluate import Evaluation
from icecube_stream.model import plots
from icecube_stream.model.evaluation_plots import evaluation_figures

pytestmark = pytest.mark.unit

PNG = b"\x89PNG\r\n\x1a\n"
ALL = {"error_by_type.png", "error_vs_pulses.png", "calibration.png", "sky.png"}


def _evaluate(data: Path, model: str, folder: Path, *extra: str) -> tuple[int, str, str]:
    args = ["evaluate", "--data", str(data), "--model", model, "--plots", str(folder), *extra]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def test_a_model_gets_every_figure_and_json_lists_them(
    labelled_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    code, stdout, stderr = _evaluate(labelled_dir, str(tiny_model_dir), tmp_path / "p", "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["n_events"] == 300
    written = [Path(p) for p in summary["plots"]]
    assert {p.name for p in written} == ALL
    assert all(p.parent == tmp_path / "p" and p.read_bytes()[:8] == PNG for p in written)


def test_linefit_has_no_sigma_to_calibrate_and_the_paths_are_printed(
    labelled_dir: Path, tmp_path: Path
) -> None:
    code, stdout, stderr = _evaluate(labelled_dir, "linefit", tmp_path / "p")
    assert code == 0, stderr
    assert "no calibration plot" in stderr
    printed = [line.removeprefix("plot: ") for line in stdout.splitlines() if "plot: " in line]
    assert {Path(p).name for p in printed} == ALL - {"calibration.png"}
    assert all(Path(p).read_bytes()[:8] == PNG for p in printed)


def test_figures_draw_degrees_and_the_truth_beside_predictions() -> None:
    rng = np.random.default_rng(0)
    errors, baseline = rng.uniform(0, 1, 50), rng.uniform(0, 2, 50)
    types = np.array(["track", "cascade"] * 25)
    histograms = plots.error_histograms(errors, baseline, types, label="m")
    assert [ax.get_xlabel() for ax in histograms.axes] == ["angular error (degrees)"] * 3
    lone = plots.error_vs(rng.integers(10, 500, 50), errors, None, "pulses per event")
    assert [line.get_label() for line in lone.axes[0].lines] == ["model mean", "model median"]
    az, zen = rng.uniform(0, 2 * np.pi, 20), rng.uniform(0, np.pi, 20)
    sky = plots.sky_map(az, zen, true_azimuth=az, true_zenith=zen)
    labels = sky.axes[0].get_legend_handles_labels()[1]
    assert labels == ["true", "predicted"]
    for figure in (histograms, lone, sky):
        plots.close(figure)


def test_a_model_is_drawn_beside_linefit_on_the_same_events(
    labelled_dir: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from icecube_stream.model import evaluation_plots

    seen = {}

    def figures(result: Evaluation, label: str, kappa: np.ndarray | None = None) -> dict:
        seen["figures"] = evaluation_figures(result, label, kappa)
        return seen["figures"]

    monkeypatch.setattr(evaluation_plots, "evaluation_figures", figures)
    code, _, stderr = _evaluate(labelled_dir, str(tiny_model_dir), tmp_path / "p")
    assert code == 0, stderr
    panel = seen["figures"]["error_by_type.png"].axes[0]
    names = [label.split(" mean")[0] for label in panel.get_legend_handles_labels()[1]]
    assert names == ["LineFit", "model"]  # the model directory's name is its label
