"""The JSON answer of /predict: columnar, one entry per served event in request order, and the
events refused by name.

Columnar lists keep the encoder's work to a few `tolist()` calls (cheap next to per-event dicts)
and are what the project's client turns straight back into numpy arrays. A refusal names the
event and why, so the client dead-letters exactly that event and keeps the rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.model.inference import Prediction
from icecube_stream.stream.validation import Problem


def finite_only(
    event_id: NDArray[np.int64], prediction: Prediction
) -> tuple[NDArray[np.int64], Prediction, list[Problem]]:
    """Events whose direction and uncertainty are finite; the others refused by name."""
    finite = np.isfinite(prediction.direction).all(axis=1) & np.isfinite(prediction.sigma)
    if finite.all():
        return event_id, prediction, []
    refused = [
        Problem(
            -1, int(e), "non-finite-output", f"the model's output for event {int(e)} is not finite"
        )
        for e in event_id[~finite]
    ]
    kept = Prediction(
        azimuth=prediction.azimuth[finite],
        zenith=prediction.zenith[finite],
        direction=prediction.direction[finite],
        kappa=prediction.kappa[finite],
        sigma=prediction.sigma[finite],
    )
    return event_id[finite], kept, refused


def build_response(
    model_name: str,
    model_version: str,
    event_id: NDArray[np.int64],
    prediction: Prediction | None,
    refused: list[Problem],
) -> dict[str, Any]:
    if prediction is None:
        direction = np.zeros((0, 3))
        azimuth = zenith = sigma = np.zeros(0)
    else:
        direction, azimuth, zenith = prediction.direction, prediction.azimuth, prediction.zenith
        sigma = prediction.sigma
    if direction.shape != (event_id.size, 3):
        raise ValueError(
            f"the model returned {direction.shape[0]} directions for {event_id.size} events"
        )
    return {
        "model_name": model_name,
        "model_version": model_version,
        "event_id": event_id.tolist(),
        "azimuth": azimuth.tolist(),
        "zenith": zenith.tolist(),
        "x": direction[:, 0].tolist(),
        "y": direction[:, 1].tolist(),
        "z": direction[:, 2].tolist(),
        "angular_uncertainty": sigma.tolist(),
        "rejected": [
            {"event_id": p.event_id, "reason": p.reason, "detail": p.detail} for p in refused
        ],
    }
