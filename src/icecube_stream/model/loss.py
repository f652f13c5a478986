"""Von Mises-Fisher loss on the sphere and what kappa means as an angular uncertainty.

For a unit direction mu and concentration kappa the 3-D vMF density is
C(kappa) exp(kappa mu.y) with C = kappa / (4 pi sinh kappa). Its negative log-likelihood,
written so that large kappa does not overflow (sinh) and small kappa does not lose digits:

    -log C - kappa mu.y = -log kappa + kappa (1 - mu.y) + log(1 - exp(-2 kappa)) + log(2 pi)

It is smallest at mu = y for every kappa, and the best kappa grows as predictions get closer,
so the network learns its own uncertainty. Near the pole vMF looks like a 2-D Gaussian with
sigma = 1 / sqrt(kappa) per axis; that sigma (radians) is the uncertainty we report
(physics/vmf.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional

LOG_2PI = math.log(2.0 * math.pi)


def vmf_nll(direction: Tensor, kappa: Tensor, target: Tensor) -> Tensor:
    """Per-event negative log-likelihood; direction and target are unit vectors (n, 3)."""
    cos = (direction * target).sum(dim=-1)
    return -torch.log(kappa) + kappa * (1.0 - cos) + torch.log(-torch.expm1(-2.0 * kappa)) + LOG_2PI


def topology_bce(logit: Tensor, truth: Tensor) -> Tensor:
    """Mean binary cross-entropy of a topology logit (track-like, starting track) over the
    events whose truth is known.

    truth is 1, 0 or NaN (unknown: real data has no topology); with no known event the term is
    an exact zero that carries no gradient, so training on such data is the direction training
    alone.
    """
    known = ~torch.isnan(truth)
    if not bool(known.any()):
        return torch.zeros((), dtype=logit.dtype)
    return functional.binary_cross_entropy_with_logits(logit[known], truth[known])
