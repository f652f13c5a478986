"""The JSON answer of /predict: columnar, one entry per event in request order.

Columnar lists keep the encoder's work to a few `tolist()` calls (cheap next to per-event dicts)
and are what the project's client turns straight back into numpy arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.model.inference import Prediction


def build_response(
    model_name: str, model_version: str, event_id: NDArray[np.int64], prediction: Prediction
) -> dict[str, Any]:
    direction = prediction.direction
    if direction.shape != (event_id.size, 3):
        raise ValueError(
            f"the model returned {direction.shape[0]} directions for {event_id.size} events"
        )
    return {
        "model_name": model_name,
        "model_version": model_version,
        "event_id": event_id.tolist(),
        "azimuth": prediction.azimuth.tolist(),
        "zenith": prediction.zenith.tolist(),
        "x": direction[:, 0].tolist(),
        "y": direction[:, 1].tolist(),
        "z": direction[:, 2].tolist(),
        "angular_uncertainty": prediction.sigma.tolist(),
    }
