"""Prediction records in the `icecube.predictions` schema: pure, no I/O.

The event's time is the emitter's send time: the Kaggle layout carries no trigger time, so every
record says `event_time_source: emitted` (a frame field for the trigger time would change that).
The sky position is computed for that time (sky/coordinates.py).
"""

from __future__ import annotations

from math import isnan
from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.sky.coordinates import to_equatorial
from icecube_stream.stream.events import Events
from icecube_stream.wire.model_api import PredictionBatch


def prediction_records(
    events: Events, answer: PredictionBatch, assembled_at_ns: int, predicted_at_ns: int
) -> list[dict[str, Any]]:
    """One record per event; `answer` holds the events' predictions in the same order."""
    shared = {
        "model_name": answer.model_name,
        "model_version": answer.model_version,
        "assembled_at_ns": assembled_at_ns,
        "predicted_at_ns": predicted_at_ns,
        "event_time_source": "emitted",
    }
    ra, dec = to_equatorial(answer.azimuth, answer.zenith, events.emitted_at_ns)
    emitted = events.emitted_at_ns.tolist()
    columns = {
        "event_id": events.event_id.tolist(),
        "azimuth": answer.azimuth.tolist(),
        "zenith": answer.zenith.tolist(),
        "x": answer.direction[:, 0].tolist(),
        "y": answer.direction[:, 1].tolist(),
        "z": answer.direction[:, 2].tolist(),
        "angular_uncertainty": answer.angular_uncertainty.tolist(),
        "n_pulses": events.pulse_count.tolist(),
        "emitted_at_ns": emitted,
        "event_time_ns": emitted,
        "ra": ra.tolist(),
        "dec": dec.tolist(),
        "track_probability": [None if isnan(p) else p for p in answer.track_probability.tolist()],
        "charge": event_charge(events).tolist(),
        "flags": [[] if complete else ["incomplete"] for complete in events.complete.tolist()],
    }
    names = tuple(columns)
    return [
        shared | dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)
    ]


def event_charge(events: Events) -> NDArray[np.float64]:
    """Total charge of each event's pulses (p.e.), the alert policy's energy proxy."""
    pulses = events.pulses
    owner = np.repeat(np.arange(pulses.n_events), pulses.pulse_count)
    charge = np.bincount(owner, weights=pulses.charge, minlength=pulses.n_events)
    return charge.astype(np.float64)
