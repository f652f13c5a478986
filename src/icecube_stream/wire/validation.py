"""Checks an event must pass before it reaches the model, for a whole frame of events at once.

The worker and the model server run the same checks (`check_events`): the worker dead-letters an
event that fails with its reason code, the server refuses it by name in its answer
(docs/model-api.md) and serves the rest. A handful of numpy passes per frame, however many
events it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from icecube_stream.wire.frame import PulseFrame
from icecube_stream.wire.reasons import EVENT_CHECKS, Reason

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
    reason: str  # a Reason (a newer model server may name one this code does not know)
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The checks' outcome for every event of a frame: a mask, and why each refused one fails."""

    refused: NDArray[np.bool_]
    problems: list[Problem]  # one per refused event, in frame order

    @property
    def passed(self) -> NDArray[np.bool_]:
        return ~self.refused


def check_events(frame: PulseFrame, limits: Limits, *, repeats_allowed: bool = False) -> Verdict:
    """Every check, for every event of a frame of whole events. A repeated event id is refused
    unless `repeats_allowed` (the worker's batch, which may hold a replayed event twice)."""
    found = event_problems(
        frame.event_id, frame.sensor_id, frame.time, frame.charge, frame.offsets, limits
    )
    if not repeats_allowed:
        by_index = {p.index: p for p in repeated_entries(frame.event_id, frame.part)}
        for problem in found:
            by_index.setdefault(problem.index, problem)
        found = [by_index[k] for k in sorted(by_index)]
    refused = np.zeros(frame.n_events, np.bool_)
    refused[[p.index for p in found]] = True
    return Verdict(refused, found)


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
        Reason.UNKNOWN_SENSOR: (sensor_id < 0) | (sensor_id >= limits.n_sensors),
        Reason.NON_FINITE: ~np.isfinite(charge),
        Reason.NEGATIVE_CHARGE: charge < 0,
        Reason.TIME_OUT_OF_RANGE: ~in_range,
    }
    failed_by = {
        Reason.EMPTY_EVENT: counts == 0,
        Reason.TOO_MANY_PULSES: counts > limits.max_pulses,
        **{reason: _any_per_event(flags, offsets) for reason, flags in flagged_pulses.items()},
        Reason.EVENT_TOO_LONG: _span(np.where(in_range, time, 0), offsets) > limits.max_span_ns,
    }
    reasons: dict[int, Reason] = {}
    for reason in EVENT_CHECKS:
        for index in np.flatnonzero(failed_by[reason]).tolist():
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
            Reason.DUPLICATE_EVENT_ID,
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
    reason: Reason,
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
        Reason.EMPTY_EVENT: "has no pulses",
        Reason.TOO_MANY_PULSES: f"has {hi - lo} pulses, over the limit of {limits.max_pulses}",
        Reason.UNKNOWN_SENSOR: "has sensor ids "
        f"{np.unique(sensors[(sensors < 0) | (sensors >= limits.n_sensors)])[:5].tolist()} "
        f"outside 0..{limits.n_sensors - 1}",
        Reason.NON_FINITE: "has a NaN or infinite charge",
        Reason.NEGATIVE_CHARGE: "has a negative charge",
        Reason.TIME_OUT_OF_RANGE: f"has pulse times beyond +-{TIME_LIMIT_NS} ns",
        Reason.EVENT_TOO_LONG: f"spans {int(times.max() - times.min()) if hi > lo else 0} ns from "
        f"first to last pulse, over the limit of {limits.max_span_ns} ns",
    }[reason]
    return f"event {int(event_id[k])} {what}"
