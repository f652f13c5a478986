"""`icecube-stream evaluate`: a model adds containment and classifier sections, LineFit none."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icecube_stream.cli import app

pytestmark = pytest.mark.unit

KEPT = {"n_events", "mean_angular_error_rad", "median_angular_error_rad", "per_type"}


def _evaluate(data: Path, model: str, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["evaluate", "--data", str(data), "--model", model, *extra])
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def test_a_model_reports_containment_and_classifier(
    labelled_dir: Path, tiny_model_dir: Path
) -> None:
    code, stdout, stderr = _evaluate(labelled_dir, str(tiny_model_dir), "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert set(summary) >= KEPT and "calibration" in summary
    types = set(summary["per_type"])
    containment = summary["containment"]
    assert containment["n_events"] == 300 and set(containment["per_type"]) == types
    for figures in (containment, *containment["per_type"].values()):
        assert 0 <= figures["fraction_within_50"] <= figures["fraction_within_90"] <= 1
        assert figures["median_radius_50_rad"] < figures["median_radius_90_rad"]
        assert figures["within_tolerance_90"] == (abs(figures["fraction_within_90"] - 0.9) <= 0.02)
    classifier = summary["classifier"]
    assert classifier["n_events"] == 300 and set(classifier["per_type"]) == types
    assert set(classifier["per_class"]) == {"track_like", "cascade"}
    per_type = classifier["per_type"]
    right = sum(f["n_events"] * f["accuracy"] for f in per_type.values())
    assert classifier["accuracy"] == pytest.approx(right / 300)


def test_the_table_flags_the_90_percent_containment(
    labelled_dir: Path, tiny_model_dir: Path
) -> None:
    code, stdout, stderr = _evaluate(labelled_dir, str(tiny_model_dir))
    assert code == 0, stderr
    assert "containment" in stdout and "classifier" in stdout
    assert "ok" in stdout or "OFF" in stdout


def test_linefit_has_neither_section(labelled_dir: Path) -> None:
    code, stdout, stderr = _evaluate(labelled_dir, "linefit", "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert set(summary) >= KEPT
    assert not {"containment", "classifier", "calibration"} & set(summary)
