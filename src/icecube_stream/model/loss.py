"""Von Mises-Fisher loss on the sphere and what kappa means as an angular uncertainty.

For a unit direction mu and concentration kappa the 3-D vMF density is
C(kappa) exp(kappa mu.y) with C = kappa / (4 pi sinh kappa). Its negative log-likelihood,
written so that large kappa does not overflow (sinh) and small kappa does not lose digits:

    -log C - kappa mu.y = -log kappa + kappa (1 - mu.y) + log(1 - exp(-2 kappa)) + log(2 pi)

It is smallest at mu = y for every kappa, and the best kappa grows as predictions get closer,
so the network learns its own uncertainty. Near the pole vMF looks like a 2-D Gaussian with
sigma = 1 / sqrt(kappa) per axis; that sigma (radians) is the uncertainty we report.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

LOG_2PI = math.log(2.0 * math.pi)


def vmf_nll(direction: Tensor, kappa: Tensor, target: Tensor) -> Tensor:
    """Per-event negative log-likelihood; direction and target are unit vectors (n, 3)."""
    cos = (direction * target).sum(dim=-1)
    return -torch.log(kappa) + kappa * (1.0 - cos) + torch.log(-torch.expm1(-2.0 * kappa)) + LOG_2PI


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
