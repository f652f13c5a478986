"""The post-hoc kappa scales: a known mis-scaled kappa comes back to 90 % containment."""

import numpy as np
import pytest

from icecube_stream.model.calibration import containment_report
from icecube_stream.model.kappa_calibration import (
    KappaCalibration,
    coverage_scale,
    fit_kappa_calibration,
)
from icecube_stream.physics.vmf import vmf_radius

pytestmark = pytest.mark.unit


def vmf_errors(kappa: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Opening angles drawn from vMF(kappa) by inverting its CDF."""
    u = rng.random(kappa.size)
    cos = 1.0 + np.log1p(-u * -np.expm1(-2.0 * kappa)) / kappa
    return np.arccos(np.clip(cos, -1.0, 1.0))


def test_a_mis_scaled_kappa_is_brought_back_to_90_percent_per_topology() -> None:
    rng = np.random.default_rng(5)
    n = 40_000
    true_kappa = np.exp(rng.uniform(np.log(2.0), np.log(400.0), n))
    errors = vmf_errors(true_kappa, rng)
    track = rng.random(n) < 0.6
    probability = np.where(track, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 0.5, n))
    # tracks reported 3x too confident, cascades 2x too modest
    reported = true_kappa * np.where(track, 3.0, 0.5)
    before = containment_report(errors, reported, np.where(track, "track", "cascade"))
    assert before["per_type"]["track"]["fraction_within_90"] < 0.8
    assert before["per_type"]["cascade"]["fraction_within_90"] > 0.95

    fitted = fit_kappa_calibration(errors[::2], reported[::2], probability[::2])
    assert fitted.track_scale == pytest.approx(1 / 3, rel=0.1)
    assert fitted.cascade_scale == pytest.approx(2.0, rel=0.1)
    held_out = slice(1, None, 2)
    calibrated = fitted.apply(reported[held_out], probability[held_out])
    after = containment_report(
        errors[held_out], calibrated, np.where(track[held_out], "track", "cascade")
    )
    for name in ("track", "cascade"):
        assert after["per_type"][name]["fraction_within_90"] == pytest.approx(0.9, abs=0.01)
        assert after["per_type"][name]["within_tolerance_90"]
    assert after["fraction_within_50"] == pytest.approx(0.5, abs=0.02)


def test_without_a_classifier_one_scale_serves_all() -> None:
    rng = np.random.default_rng(6)
    kappa = np.full(5_000, 50.0)
    errors = vmf_errors(kappa, rng)
    fitted = fit_kappa_calibration(errors, kappa * 4, np.full(kappa.size, np.nan))
    assert fitted.track_scale == fitted.cascade_scale == pytest.approx(0.25, rel=0.1)
    scaled = fitted.apply(kappa * 4, np.full(kappa.size, np.nan))
    assert np.mean(errors <= vmf_radius(scaled, 0.9)) == pytest.approx(0.9, abs=0.01)


def test_the_scale_solves_the_coverage_it_promises() -> None:
    errors = np.linspace(0.01, 1.0, 1000)
    kappa = np.full(1000, 10.0)
    scale = coverage_scale(errors, kappa, 0.9)
    assert np.mean(errors <= vmf_radius(kappa * scale, 0.9)) == pytest.approx(0.9, abs=0.002)


def test_round_trip_through_config_json() -> None:
    calibration = KappaCalibration(1.25, 0.75)
    assert KappaCalibration.from_dict(calibration.as_dict()) == calibration


def test_containment_report_flags_a_miss() -> None:
    kappa = np.full(100, 100.0)
    errors = np.r_[np.zeros(80), np.full(20, 1.0)]  # 80 % within any radius below 1 rad
    report = containment_report(errors, kappa, np.array(["cascade"] * 100))
    assert report["fraction_within_90"] == 0.8 and not report["within_tolerance_90"]
    assert report["per_type"]["cascade"]["n_events"] == 100
    assert report["median_radius_90_rad"] == pytest.approx(float(vmf_radius(kappa, 0.9)[0]))


def test_a_heavier_tail_of_starting_tracks_is_solved_with_the_slope() -> None:
    """Starting tracks that the classifier mixes with the other types, with a tail that their
    kappa does not show: per-topology scales alone leave them short of 90 %, the slope on the
    starting probability brings every true type back."""
    rng = np.random.default_rng(7)
    n = 60_000
    types = rng.choice(np.array(["track", "starting_track", "cascade"]), n, p=[0.4, 0.2, 0.4])
    starting = types == "starting_track"
    true_kappa = np.exp(rng.uniform(np.log(2.0), np.log(400.0), n))
    # one starting track in four is scattered as if its kappa were 10x smaller
    scattered = starting & (rng.random(n) < 0.25)
    errors = vmf_errors(np.where(scattered, true_kappa / 10, true_kappa), rng)
    track_probability = np.where(
        types == "cascade", rng.uniform(0.0, 0.6, n), rng.uniform(0.4, 1, n)
    )
    starting_probability = np.where(starting, rng.uniform(0.3, 1.0, n), rng.uniform(0.0, 0.7, n))
    fit, held_out = slice(0, None, 2), slice(1, None, 2)

    def per_type(calibration: KappaCalibration) -> dict[str, float]:
        kappa = calibration.apply(
            true_kappa[held_out], track_probability[held_out], starting_probability[held_out]
        )
        report = containment_report(errors[held_out], kappa, types[held_out])
        return {name: v["fraction_within_90"] for name, v in report["per_type"].items()}

    without_types = fit_kappa_calibration(
        errors[fit], true_kappa[fit], track_probability[fit], starting_probability[fit]
    )
    assert without_types.starting_slope == 0.0
    assert per_type(without_types)["starting_track"] < 0.86
    solved = fit_kappa_calibration(
        errors[fit], true_kappa[fit], track_probability[fit], starting_probability[fit], types[fit]
    )
    assert solved.starting_slope > 1.0
    for name, fraction in per_type(solved).items():
        assert fraction == pytest.approx(0.9, abs=0.012), name
