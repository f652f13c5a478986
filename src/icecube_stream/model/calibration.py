"""Does the predicted uncertainty mean something? Coverage of the vMF error model.

With sigma = 1 / sqrt(kappa) the vMF distribution puts 1 - e^{-1/2} ~ 39 % of events within 1
sigma and 1 - e^{-2} ~ 86 % within 2 sigma (exactly: `vmf_containment`, which we average over
the events' own kappas). A calibrated model's observed fractions match those expected ones;
observed below expected means over-confident, above means too modest.

`containment_report` asks the question alerts care about: does the truth lie within the 50 % and
90 % vMF radius as often as promised, overall and per event type? The 90 % region is the one
quoted in alerts, so it must hold the truth 90 +- 2 % of the time for every type.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.physics.vmf import sigma_from_kappa, vmf_containment, vmf_radius

CURVE_LEVELS = tuple(round(x, 2) for x in np.linspace(0.05, 0.95, 19))
#: The containment levels reported, and how far the 90 % one may be off (absolute fraction).
CONTAINMENT_LEVELS = (0.5, 0.9)
TOLERANCE_90 = 0.02


def calibration_report(errors: NDArray[np.floating], kappa: NDArray[np.floating]) -> dict[str, Any]:
    """Observed vs expected fractions within 1 and 2 sigma, the median sigma (radians), plus a
    coverage curve."""
    err = np.asarray(errors, dtype=np.float64)
    k = np.asarray(kappa, dtype=np.float64)
    if err.shape != k.shape or err.size == 0:
        raise ValueError(f"errors {err.shape} and kappa {k.shape} must be equal, non-empty")
    sigma = sigma_from_kappa(k)
    observed_curve = [float(np.mean(err <= vmf_radius(k, level))) for level in CURVE_LEVELS]
    return {
        "n_events": int(err.size),
        "fraction_within_1sigma": float(np.mean(err <= sigma)),
        "fraction_within_2sigma": float(np.mean(err <= 2.0 * sigma)),
        "expected_within_1sigma": float(np.mean(vmf_containment(k, sigma))),
        "expected_within_2sigma": float(np.mean(vmf_containment(k, np.minimum(2 * sigma, np.pi)))),
        "median_sigma_rad": float(np.median(sigma)),
        "curve": {"levels": list(CURVE_LEVELS), "observed": observed_curve},
    }


def _containment(errors: NDArray[np.float64], kappa: NDArray[np.float64]) -> dict[str, Any]:
    out: dict[str, Any] = {"n_events": int(errors.size)}
    for level in CONTAINMENT_LEVELS:
        percent = round(100 * level)
        radius = vmf_radius(kappa, level)
        out[f"fraction_within_{percent}"] = (
            float(np.mean(errors <= radius)) if errors.size else None
        )
        out[f"median_radius_{percent}_rad"] = float(np.median(radius)) if errors.size else None
    within = out["fraction_within_90"]
    out["within_tolerance_90"] = within is not None and abs(within - 0.9) <= TOLERANCE_90
    return out


def containment_report(
    errors: NDArray[np.floating],
    kappa: NDArray[np.floating],
    event_types: NDArray[Any] | None = None,
) -> dict[str, Any]:
    """Observed fraction of events within the vMF 50 % / 90 % radius of their own kappa, the
    median radii (radians), and whether 90 % is met within TOLERANCE_90; overall and, with
    event types, per type."""
    err = np.asarray(errors, dtype=np.float64)
    k = np.asarray(kappa, dtype=np.float64)
    if err.shape != k.shape:
        raise ValueError(f"errors {err.shape} and kappa {k.shape} must be equal")
    out = {"levels": list(CONTAINMENT_LEVELS), "tolerance_90": TOLERANCE_90, **_containment(err, k)}
    per_type: dict[str, Any] = {}
    if event_types is not None:
        types = np.asarray(event_types).astype(str)
        for name in sorted(set(types.tolist())):
            per_type[name] = _containment(err[types == name], k[types == name])
    out["per_type"] = per_type
    return out
