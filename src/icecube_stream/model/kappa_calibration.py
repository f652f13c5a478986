"""A post-hoc scale on kappa, one per predicted topology, so that the 90 % region means 90 %.

Why: the network learns kappa by maximising the vMF likelihood, which rewards a good fit of the
whole error distribution, not of its tail. Measured on simulated events (docs/model.md), the raw
90 % region of the quick model holds the truth too rarely for cascades and too often for tracks:
their errors have heavier tails than a vMF of the fitted kappa, and the tails differ by topology.
Alerts quote the 90 % radius, so that one level is what must be right. A single multiplicative
factor per topology is the smallest fix that does it: it keeps the ranking of events by kappa
(the network's own knowledge of which events are better), it needs no more than the validation
split to fit, and two numbers in config.json are easy to read and to check. The topology is the
classifier's (probability >= 0.5 is track-like), because inference has no truth; a model without
a classifier gets one scale for all events.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.model.classifier import THRESHOLD
from icecube_stream.physics.vmf import vmf_containment

#: The containment level the scales are fitted for (the alerts' 90 % region).
LEVEL = 0.9
#: A predicted topology with fewer validation events than this takes the overall scale.
MIN_EVENTS = 50
#: Bisection bounds and steps for the scale (log10): 1e-3 .. 1e3 is far outside what a trained
#: model needs, and 60 halvings resolve it far below the data's own noise.
_LOG_BOUNDS = (-3.0, 3.0)
_STEPS = 60


@dataclass(frozen=True)
class KappaCalibration:
    """kappa_calibrated = kappa * (track_scale if track-like else cascade_scale)."""

    track_scale: float = 1.0
    cascade_scale: float = 1.0
    level: float = LEVEL
    threshold: float = THRESHOLD

    def apply(
        self, kappa: NDArray[np.floating], track_probability: NDArray[np.floating]
    ) -> NDArray[np.float64]:
        """Calibrated kappa; a NaN probability (no classifier) takes the cascade scale, which
        equals the track scale for such models."""
        track_like = np.asarray(track_probability, dtype=np.float64) >= self.threshold
        scale = np.where(track_like, self.track_scale, self.cascade_scale)
        return np.asarray(np.asarray(kappa, dtype=np.float64) * scale, dtype=np.float64)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> KappaCalibration:
        return cls(**{k: float(v) for k, v in values.items()})


def coverage_scale(
    errors: NDArray[np.floating], kappa: NDArray[np.floating], level: float = LEVEL
) -> float:
    """The factor s for which a fraction `level` of events lie within vmf_radius(s kappa, level).

    An event lies within its radius exactly when its error's vMF CDF is at most `level`; that
    CDF grows with s, so the covered fraction falls as s grows and bisection finds the crossing.
    """
    err = np.asarray(errors, dtype=np.float64)
    k = np.asarray(kappa, dtype=np.float64)
    if err.size == 0:
        return 1.0
    low, high = _LOG_BOUNDS
    for _ in range(_STEPS):
        middle = 0.5 * (low + high)
        covered = np.mean(vmf_containment(k * 10.0**middle, err) <= level)
        if covered > level:
            low = middle  # regions too wide: tighten (larger kappa)
        else:
            high = middle
    return float(10.0 ** (0.5 * (low + high)))


def fit_kappa_calibration(
    errors: NDArray[np.floating],
    kappa: NDArray[np.floating],
    track_probability: NDArray[np.floating],
    level: float = LEVEL,
    threshold: float = THRESHOLD,
) -> KappaCalibration:
    """Scales fitted on validation events (angular errors, raw kappa, classifier output)."""
    err = np.asarray(errors, dtype=np.float64)
    k = np.asarray(kappa, dtype=np.float64)
    probability = np.asarray(track_probability, dtype=np.float64)
    overall = coverage_scale(err, k, level)
    if np.isnan(probability).all():
        return KappaCalibration(overall, overall, level, threshold)
    track_like = probability >= threshold
    scales = [
        coverage_scale(err[group], k[group], level) if group.sum() >= MIN_EVENTS else overall
        for group in (track_like, ~track_like)
    ]
    return KappaCalibration(scales[0], scales[1], level, threshold)
