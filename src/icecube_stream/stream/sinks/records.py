"""Prediction records in the `icecube.predictions` schema: pure, no I/O."""

from __future__ import annotations

from typing import Any

from icecube_stream.stream.events import Events
from icecube_stream.wire.model_api import PredictionBatch


def prediction_records(
    events: Events, answer: PredictionBatch, assembled_at_ns: int, predicted_at_ns: int
) -> list[dict[str, Any]]:
    """One record per event; `answer` holds the events' predictions in the same order."""
    x, y, z = answer.direction.T.tolist()
    model_name, model_version = answer.model_name, answer.model_version
    return [
        {
            "event_id": event_id,
            "azimuth": azimuth,
            "zenith": zenith,
            "x": x[k],
            "y": y[k],
            "z": z[k],
            "angular_uncertainty": sigma,
            "model_name": model_name,
            "model_version": model_version,
            "n_pulses": n_pulses,
            "emitted_at_ns": emitted_at_ns,
            "assembled_at_ns": assembled_at_ns,
            "predicted_at_ns": predicted_at_ns,
            "flags": [] if complete else ["incomplete"],
        }
        for k, (event_id, azimuth, zenith, sigma, n_pulses, emitted_at_ns, complete) in enumerate(
            zip(
                events.event_id.tolist(),
                answer.azimuth.tolist(),
                answer.zenith.tolist(),
                answer.angular_uncertainty.tolist(),
                events.pulse_count.tolist(),
                events.emitted_at_ns.tolist(),
                events.complete.tolist(),
                strict=True,
            )
        )
    ]
