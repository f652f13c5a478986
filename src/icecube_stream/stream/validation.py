"""Checks an event must pass before it reaches the model, for a whole batch of events at once.

The worker and the model server run the same checks: the worker dead-letters an event that
fails with its reason code, the server refuses it by name in its answer (docs/model-api.md) and
serves the rest. A handful of numpy passes per batch, however many events it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Pulse times beyond this many ns (about 11.6 days) either way are garbage, int64 extremes
#: included; below it, float64 holds every nanosecond exactly.
TIME_LIMIT_NS = 10**15


@dataclass(frozen=True)
class Limits:
    n_sensors: int
    max_pulses: int
    max_span_ns: int = 1_000_000  # first to last pulse; IceCube's readout window is ~10 us


@dataclass(frozen=True)
class Problem:
    """Why one event of the batch (its position `index`) cannot be reconstructed."""

    index: int
    event_id: int
    reason: str
    detail: str


def event_problems(
    event_id: NDArray[np.int64],
    sensor_id: NDArray[np.integer],
    time: NDArray[np.int64],
    charge: NDArray[np.floating],
    offsets: NDArray[np.int64],
    limits: Limits,
) -> list[Problem]:
    """One Problem per event that fails a check (the first check it fails), in batch order."""
    counts = np.diff(offsets)
    in_range = (time >= -TIME_LIMIT_NS) & (time <= TIME_LIMIT_NS)
    flagged_pulses = {
        "unknown-sensor": (sensor_id < 0) | (sensor_id >= limits.n_sensors),
        "non-finite": ~np.isfinite(charge),
        "negative-charge": charge < 0,
        "time-out-of-range": ~in_range,
    }
    checks: list[tuple[str, NDArray[np.bool_]]] = [
        ("empty-event", counts == 0),
        ("too-many-pulses", counts > limits.max_pulses),
        *((reason, _any_per_event(flags, offsets)) for reason, flags in flagged_pulses.items()),
        ("event-too-long", _span(np.where(in_range, time, 0), offsets) > limits.max_span_ns),
    ]
    reasons: dict[int, str] = {}
    for reason, failed in checks:
        for index in np.flatnonzero(failed).tolist():
            reasons.setdefault(index, reason)
    return [
        Problem(
            k,
            int(event_id[k]),
            reason,
            _detail(reason, k, event_id, sensor_id, time, offsets, limits),
        )
        for k, reason in sorted(reasons.items())
    ]


def repeated_entries(event_id: NDArray[np.int64], part: NDArray[np.int32]) -> list[Problem]:
    """Entries of one frame that repeat an (event id, part) pair: which copy is the event cannot
    be told, so every copy is refused. Not an event check: a batch assembled from several
    messages may hold one event twice (a replay), and both copies are then served."""
    pairs = np.stack([event_id, part.astype(np.int64)])
    _, inverse, counts = np.unique(pairs, axis=1, return_inverse=True, return_counts=True)
    return [
        Problem(
            k,
            int(event_id[k]),
            "duplicate-event-id",
            f"event {int(event_id[k])} (part {int(part[k])}) appears more than once in one frame",
        )
        for k in np.flatnonzero(counts[inverse.ravel()] > 1).tolist()
    ]


def _any_per_event(flags: NDArray[np.bool_], offsets: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Whether any pulse of each event is flagged; empty events are fine (cumulative sums)."""
    running = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    return np.asarray(running[offsets[1:]] - running[offsets[:-1]] > 0)


def _span(time: NDArray[np.int64], offsets: NDArray[np.int64]) -> NDArray[np.int64]:
    """Last minus first pulse time per event (0 for an empty event)."""
    span = np.zeros(offsets.size - 1, np.int64)
    filled = np.flatnonzero(np.diff(offsets) > 0)
    if filled.size:
        starts = offsets[:-1][filled]
        span[filled] = np.maximum.reduceat(time, starts) - np.minimum.reduceat(time, starts)
    return span


def _detail(
    reason: str,
    k: int,
    event_id: NDArray[np.int64],
    sensor_id: NDArray[np.integer],
    time: NDArray[np.int64],
    offsets: NDArray[np.int64],
    limits: Limits,
) -> str:
    """The message for the one failing event: cheap, since failures are rare."""
    lo, hi = int(offsets[k]), int(offsets[k + 1])
    sensors, times = sensor_id[lo:hi], np.clip(time[lo:hi], -TIME_LIMIT_NS, TIME_LIMIT_NS)
    what = {
        "empty-event": "has no pulses",
        "too-many-pulses": f"has {hi - lo} pulses, over the limit of {limits.max_pulses}",
        "unknown-sensor": "has sensor ids "
        f"{np.unique(sensors[(sensors < 0) | (sensors >= limits.n_sensors)])[:5].tolist()} "
        f"outside 0..{limits.n_sensors - 1}",
        "non-finite": "has a NaN or infinite charge",
        "negative-charge": "has a negative charge",
        "time-out-of-range": f"has pulse times beyond +-{TIME_LIMIT_NS} ns",
        "event-too-long": f"spans {int(times.max() - times.min()) if hi > lo else 0} ns from "
        f"first to last pulse, over the limit of {limits.max_span_ns} ns",
    }[reason]
    return f"event {int(event_id[k])} {what}"
