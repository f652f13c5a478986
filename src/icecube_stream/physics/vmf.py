"""The von Mises-Fisher distribution on the sphere as an angular error model: pure numpy, so the
worker, the sky maps and evaluation use it without torch.

For concentration kappa the opening angle a between the true and the predicted direction has
P(a < angle) = (1 - e^{-k(1-cos angle)}) / (1 - e^{-2k}); near the pole vMF looks like a 2-D
Gaussian with sigma = 1 / sqrt(kappa) per axis.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def sigma_from_kappa(kappa: NDArray[np.floating]) -> NDArray[np.float64]:
    """Angular uncertainty in radians (2-D Gaussian sigma), capped at pi for tiny kappa."""
    k = np.asarray(kappa, dtype=np.float64)
    return np.asarray(np.minimum(1.0 / np.sqrt(np.maximum(k, 1e-12)), np.pi), dtype=np.float64)


def vmf_containment(
    kappa: NDArray[np.floating], angle: NDArray[np.floating]
) -> NDArray[np.float64]:
    """P(opening angle < angle) under vMF(kappa): (1 - e^{-k(1-cos a)}) / (1 - e^{-2k})."""
    k = np.asarray(kappa, dtype=np.float64)
    a = np.asarray(angle, dtype=np.float64)
    return np.asarray(-np.expm1(-k * (1.0 - np.cos(a))) / -np.expm1(-2.0 * k), dtype=np.float64)


def vmf_radius(kappa: NDArray[np.floating], level: float) -> NDArray[np.float64]:
    """Opening angle containing `level` of the vMF(kappa) probability (inverse of the above)."""
    k = np.asarray(kappa, dtype=np.float64)
    target = level * -np.expm1(-2.0 * k)
    cos = 1.0 + np.log1p(-target) / k
    return np.asarray(np.arccos(np.clip(cos, -1.0, 1.0)), dtype=np.float64)


def kappa_from_sigma(sigma: NDArray[np.floating]) -> NDArray[np.float64]:
    """The concentration a reported sigma stands for (the inverse of `sigma_from_kappa` below
    its cap)."""
    s = np.asarray(sigma, dtype=np.float64)
    return np.asarray(1.0 / np.square(np.maximum(s, 1e-6)), dtype=np.float64)
