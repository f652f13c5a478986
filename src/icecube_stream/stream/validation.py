"""Checks an event must pass before it reaches the model; failures go to the DLQ with a reason."""

from __future__ import annotations

import numpy as np

from icecube_stream.stream.assembly import Event


def rejection(event: Event, n_sensors: int, max_pulses: int) -> tuple[str, str] | None:
    """(reason code, detail) when the event cannot be reconstructed, else None."""
    if event.n_pulses == 0:
        return "empty-event", f"event {event.event_id} has no pulses"
    if event.n_pulses > max_pulses:
        return "too-many-pulses", f"event {event.event_id}: {event.n_pulses} > {max_pulses} pulses"
    # Fast path, four reductions: a NaN makes min() NaN and fails the comparison.
    sensors, charge = event.sensor_id, event.charge
    if (
        sensors.min() >= 0
        and sensors.max() < n_sensors
        and 0 <= charge.min() <= charge.max() < np.inf
    ):
        return None
    return _pulse_problem(event, n_sensors)


def _pulse_problem(event: Event, n_sensors: int) -> tuple[str, str] | None:
    """Which pulse check fails, for the rare event the fast path refused."""
    unknown = (event.sensor_id < 0) | (event.sensor_id >= n_sensors)
    if unknown.any():
        ids = np.unique(event.sensor_id[unknown])[:5].tolist()
        return (
            "unknown-sensor",
            f"event {event.event_id}: sensor ids {ids} outside 0..{n_sensors - 1}",
        )
    if not np.isfinite(event.charge).all():
        return "non-finite", f"event {event.event_id}: charge is NaN or infinite"
    if (event.charge < 0).any():
        return "negative-charge", f"event {event.event_id}: negative charge"
    return None
