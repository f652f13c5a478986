"""Track-like vs cascade: the truth the classifier head learns and how well it does.

Two classes are published, because that is the distinction that matters downstream: a track
(through-going or starting) points back to its source within a degree or so and can make an
alert, a cascade cannot. A second output learns starting track vs the rest only for the kappa
calibration (kappa_calibration.py): starting tracks' errors have their own tail. The simulator's
three event types map onto both; any other or missing type is unknown (NaN) and simply not
trained or scored on. Pure numpy, so evaluation needs no torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

#: The simulator's event types (events/simulator.py EVENT_TYPES) that are track-like.
THROUGH_GOING, STARTING = "track", "starting_track"
TRACK_LIKE = (THROUGH_GOING, STARTING)
CASCADE_LIKE = ("cascade",)
#: Probability at or above which an event is called track-like.
THRESHOLD = 0.5


def track_truth(event_types: NDArray[Any] | None, n_events: int) -> NDArray[np.float64]:
    """1.0 track-like, 0.0 cascade, NaN unknown, per event (all NaN without event types)."""
    return _truth(event_types, n_events, TRACK_LIKE)


def starting_truth(event_types: NDArray[Any] | None, n_events: int) -> NDArray[np.float64]:
    """1.0 starting track, 0.0 another known type, NaN unknown (all NaN without event types)."""
    return _truth(event_types, n_events, (STARTING,))


def _truth(
    event_types: NDArray[Any] | None, n_events: int, positive: tuple[str, ...]
) -> NDArray[np.float64]:
    truth = np.full(n_events, np.nan)
    if event_types is None:
        return truth
    types = np.asarray(event_types).astype(str)
    known = np.isin(types, TRACK_LIKE + CASCADE_LIKE)
    truth[known] = np.isin(types[known], positive)
    return truth


def classifier_report(
    track_probability: NDArray[np.floating], event_types: NDArray[Any]
) -> dict[str, Any] | None:
    """Accuracy at THRESHOLD overall, per class and per true event type; None when the model
    has no classifier (all NaN) or no event has a known topology."""
    probability = np.asarray(track_probability, dtype=np.float64)
    types = np.asarray(event_types).astype(str)
    truth = track_truth(types, probability.size)
    known = ~np.isnan(truth)
    if np.isnan(probability).all() or not known.any():
        return None
    right = (probability >= THRESHOLD) == (truth == 1.0)

    def accuracy(mask: NDArray[np.bool_]) -> dict[str, Any]:
        n = int(mask.sum())
        return {"n_events": n, "accuracy": float(np.mean(right[mask])) if n else None}

    return {
        "threshold": THRESHOLD,
        **accuracy(known),
        "per_class": {
            "track_like": accuracy(known & (truth == 1.0)),
            "cascade": accuracy(known & (truth == 0.0)),
        },
        "per_type": {name: accuracy(types == name) for name in sorted(set(types[known]))},
    }
