"""Does the predicted uncertainty mean something? Coverage of the vMF error model.

With sigma = 1 / sqrt(kappa) the vMF distribution puts 1 - e^{-1/2} ~ 39 % of events within 1
sigma and 1 - e^{-2} ~ 86 % within 2 sigma (exactly: `vmf_containment`, which we average over
the events' own kappas). A calibrated model's observed fractions match those expected ones;
observed below expected means over-confident, above means too modest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.physics.vmf import sigma_from_kappa, vmf_containment, vmf_radius

CURVE_LEVELS = tuple(round(x, 2) for x in np.linspace(0.05, 0.95, 19))


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
