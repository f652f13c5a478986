import numpy as np
import pytest
import torch

from icecube_stream.model.calibration import calibration_report
from icecube_stream.model.loss import vmf_nll
from icecube_stream.physics.angles import angles_to_vector
from icecube_stream.physics.vmf import vmf_containment, vmf_radius

pytestmark = pytest.mark.unit


def test_loss_is_smallest_at_the_true_direction() -> None:
    target = torch.tensor(angles_to_vector(1.0, 0.7), dtype=torch.float64)[None, :]
    az, zen = np.meshgrid(np.linspace(0, 2 * np.pi, 60), np.linspace(0, np.pi, 30))
    candidates = torch.tensor(angles_to_vector(az.ravel(), zen.ravel()))
    candidates = torch.cat([candidates, target])
    for kappa in (0.5, 5.0, 500.0):
        k = torch.full((candidates.shape[0],), kappa, dtype=torch.float64)
        loss = vmf_nll(candidates, k, target.expand_as(candidates))
        assert int(torch.argmin(loss)) == candidates.shape[0] - 1


def test_best_kappa_grows_as_the_error_shrinks() -> None:
    kappas = torch.logspace(-1, 4, 400, dtype=torch.float64)
    target = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64).expand(400, 3)
    best = []
    for angle in (0.5, 0.1, 0.02):
        pred = torch.tensor([[np.sin(angle), 0.0, np.cos(angle)]]).expand(400, 3)
        best.append(float(kappas[torch.argmin(vmf_nll(pred, kappas, target))]))
    assert best[0] < best[1] < best[2]


def test_loss_is_finite_for_extreme_kappa() -> None:
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    for kappa in (1e-4, 1e6):
        assert torch.isfinite(vmf_nll(d, torch.full((2,), kappa, dtype=torch.float64), t)).all()


def test_radius_inverts_containment() -> None:
    kappa = np.array([0.3, 3.0, 30.0, 3000.0])
    for level in (0.1, 0.5, 0.9):
        np.testing.assert_allclose(vmf_containment(kappa, vmf_radius(kappa, level)), level)


def _sample_vmf_angles(kappa: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Opening angles of vMF draws: cos = 1 + log(u + (1 - u) e^{-2k}) / k."""
    u = rng.random(kappa.size)
    cos = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * kappa)) / kappa
    return np.arccos(np.clip(cos, -1.0, 1.0))


def test_calibration_of_a_perfectly_calibrated_model() -> None:
    rng = np.random.default_rng(5)
    kappa = 10 ** rng.uniform(0, 3, 20000)
    errors = _sample_vmf_angles(kappa, rng)
    report = calibration_report(errors, kappa)
    assert report["fraction_within_1sigma"] == pytest.approx(
        report["expected_within_1sigma"], abs=0.015
    )
    assert report["fraction_within_2sigma"] == pytest.approx(
        report["expected_within_2sigma"], abs=0.015
    )
    np.testing.assert_allclose(report["curve"]["observed"], report["curve"]["levels"], atol=0.02)


def test_calibration_detects_over_confidence() -> None:
    rng = np.random.default_rng(6)
    kappa = np.full(5000, 100.0)
    errors = _sample_vmf_angles(kappa / 10.0, rng)  # truth is 10x broader than claimed
    report = calibration_report(errors, kappa)
    assert report["fraction_within_1sigma"] < report["expected_within_1sigma"] - 0.2
