"""A post-hoc scale on kappa, fitted so that the 90 % region means 90 % for every event type.

Why: the network learns kappa by maximising the vMF likelihood, which rewards a good fit of the
whole error distribution, not of its tail. Measured on simulated events (docs/model.md), the raw
90 % region of the quick model holds the truth too rarely for cascades and starting tracks and
too often for through-going tracks: their errors have heavier tails than a vMF of the fitted
kappa, and the tails differ by type. Alerts quote the 90 % radius, so that one level is what
must be right, and right for each type, not only on average.

The calibrated kappa is

    kappa * (track_scale if track-like else cascade_scale) * exp(-starting_slope * P(starting))

Three numbers for three types, each one solved on the validation split so that its own type's
90 % coverage is 90 % (fit_kappa_calibration). A per-topology scale alone was not enough: a
starting track that the classifier calls a cascade or a through-going track has a heavier tail
than the true members of that group, at the same kappa; the starting-track probability widens
the regions of every event by how much it looks like one, which is what lifts them. A factor
keeps the ranking of events by kappa (the network's own knowledge of which events are better),
and three numbers in config.json are easy to read and to check. Inference has no truth, so
every input of the formula is the network's own output; a model without a classifier gets one
scale for all events, one without the starting output a zero slope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.model.classifier import CASCADE_LIKE, STARTING, THRESHOLD, THROUGH_GOING
from icecube_stream.physics.vmf import vmf_containment

#: The containment level the scales are fitted for (the alerts' 90 % region).
LEVEL = 0.9
#: A predicted topology or true type with fewer validation events than this is not fitted on
#: its own (the overall scale, or a zero slope, stands in).
MIN_EVENTS = 50
#: Bisection bounds (log10 of a scale; the slope itself) and steps: far outside what a trained
#: model needs, and 60 halvings resolve them far below the data's own noise.
_LOG_BOUNDS = (-3.0, 3.0)
_SLOPE_BOUNDS = (-10.0, 10.0)
_STEPS = 60
#: Rounds of solving the three numbers one after the other: each moves the other types'
#: coverage a little (a few events of every type sit in each group); two rounds settled it on
#: the quick model, four leave room.
_ROUNDS = 4

Floats = NDArray[np.floating]


@dataclass(frozen=True)
class KappaCalibration:
    track_scale: float = 1.0
    cascade_scale: float = 1.0
    level: float = LEVEL
    threshold: float = THRESHOLD
    #: 0 for models without the starting-track output (and those saved before it).
    starting_slope: float = 0.0

    def apply(
        self,
        kappa: Floats,
        track_probability: Floats,
        starting_probability: Floats | None = None,
    ) -> NDArray[np.float64]:
        """Calibrated kappa; a NaN track probability (no classifier) takes the cascade scale,
        which equals the track scale for such models, a NaN starting probability counts 0."""
        track_like = np.asarray(track_probability, dtype=np.float64) >= self.threshold
        scale = np.where(track_like, self.track_scale, self.cascade_scale)
        if starting_probability is not None and self.starting_slope != 0.0:
            starting = np.nan_to_num(np.asarray(starting_probability, dtype=np.float64))
            scale = scale * np.exp(-self.starting_slope * starting)
        return np.asarray(np.asarray(kappa, dtype=np.float64) * scale, dtype=np.float64)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> KappaCalibration:
        return cls(**{k: float(v) for k, v in values.items()})


def coverage_scale(errors: Floats, kappa: Floats, level: float = LEVEL) -> float:
    """The factor s for which a fraction `level` of events lie within vmf_radius(s kappa, level).

    An event lies within its radius exactly when its error's vMF CDF is at most `level`; that
    CDF grows with s, so the covered fraction falls as s grows and bisection finds the crossing.
    """
    err = np.asarray(errors, dtype=np.float64)
    k = np.asarray(kappa, dtype=np.float64)
    if err.size == 0:
        return 1.0
    log_scale = _bisect(
        lambda x: float(np.mean(vmf_containment(k * 10.0**x, err) <= level)), level, _LOG_BOUNDS
    )
    return float(10.0**log_scale)


def fit_kappa_calibration(
    errors: Floats,
    kappa: Floats,
    track_probability: Floats,
    starting_probability: Floats | None = None,
    event_types: NDArray[Any] | None = None,
    level: float = LEVEL,
    threshold: float = THRESHOLD,
) -> KappaCalibration:
    """The calibration for validation events (angular errors, raw kappa, the network's
    probabilities and, where known, the true event types).

    With event types and a starting output, the three numbers are solved together: the track
    scale for the through-going tracks' coverage, the cascade scale for the cascades' and the
    slope for the starting tracks'. Without types (real data) each predicted topology gets the
    scale that covers its own events; without a classifier one scale covers all.
    """
    err = np.asarray(errors, dtype=np.float64)
    k = np.asarray(kappa, dtype=np.float64)
    probability = np.asarray(track_probability, dtype=np.float64)
    overall = coverage_scale(err, k, level)
    if np.isnan(probability).all():
        return KappaCalibration(overall, overall, level, threshold)
    track_like = probability >= threshold
    track_scale, cascade_scale = (
        coverage_scale(err[group], k[group], level) if group.sum() >= MIN_EVENTS else overall
        for group in (track_like, ~track_like)
    )
    calibration = KappaCalibration(track_scale, cascade_scale, level, threshold)
    if starting_probability is None or event_types is None:
        return calibration
    starting = np.asarray(starting_probability, dtype=np.float64)
    if np.isnan(starting).all():
        return calibration
    return _solve_per_type(calibration, err, k, probability, starting, event_types)


#: The numbers solved per type: (field, the true types whose coverage it sets, bisection
#: bounds, field value from the bisected x, along which coverage falls).
_Unknown = tuple[str, tuple[str, ...], tuple[float, float], Callable[[float], float]]
_UNKNOWNS: tuple[_Unknown, ...] = (
    ("track_scale", (THROUGH_GOING,), _LOG_BOUNDS, lambda x: 10.0**x),
    ("cascade_scale", CASCADE_LIKE, _LOG_BOUNDS, lambda x: 10.0**x),
    ("starting_slope", (STARTING,), _SLOPE_BOUNDS, lambda x: -x),
)


def _solve_per_type(
    calibration: KappaCalibration,
    err: NDArray[np.float64],
    kappa: NDArray[np.float64],
    track_probability: NDArray[np.float64],
    starting_probability: NDArray[np.float64],
    event_types: NDArray[Any],
) -> KappaCalibration:
    """Gauss-Seidel on three one-dimensional problems: each number moves mostly its own type's
    coverage, so solving them in turn for a few rounds converges. A type with too few events
    keeps the value it started with."""
    types = np.asarray(event_types).astype(str)
    for _ in range(_ROUNDS):
        for name, member_types, bounds, to_value in _UNKNOWNS:
            members = np.isin(types, member_types)
            if members.sum() < MIN_EVENTS:
                continue
            covered = partial(
                _trial_coverage,
                calibration,
                name,
                to_value,
                err[members],
                kappa[members],
                track_probability[members],
                starting_probability[members],
            )
            x = _bisect(covered, calibration.level, bounds)
            calibration = replace(calibration, **{name: to_value(x)})
    return calibration


def _trial_coverage(
    calibration: KappaCalibration,
    name: str,
    to_value: Callable[[float], float],
    err: NDArray[np.float64],
    kappa: NDArray[np.float64],
    track_probability: NDArray[np.float64],
    starting_probability: NDArray[np.float64],
    x: float,
) -> float:
    """The fraction of these events covered with one number of the calibration set from x."""
    trial = replace(calibration, **{name: to_value(x)})
    calibrated = trial.apply(kappa, track_probability, starting_probability)
    return float(np.mean(vmf_containment(calibrated, err) <= calibration.level))


def _bisect(covered: Callable[[float], float], level: float, bounds: tuple[float, float]) -> float:
    """The x where covered(x), a fraction that falls as x grows, crosses `level`."""
    low, high = bounds
    for _ in range(_STEPS):
        middle = 0.5 * (low + high)
        if covered(middle) > level:
            low = middle  # regions too wide: tighten
        else:
            high = middle
    return 0.5 * (low + high)
