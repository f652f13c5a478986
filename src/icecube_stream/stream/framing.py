"""Cutting a data set into pulse frames: whole events up to a size, large events split in parts.

Every part of a split event carries the event's id, its number and the count of parts, and the
frame's routing key is that id, so the parts land on one partition and one worker assembles them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from icecube_stream.events.batch import EventBatch
from icecube_stream.wire.frame import PulseFrame


def frames_from_batch(
    batch: EventBatch, source: str, max_events: int, max_pulses: int
) -> Iterator[PulseFrame]:
    """Consecutive whole events, at most max_events and max_pulses per frame; large events split."""
    counts = batch.pulse_counts
    start = 0
    while start < batch.n_events:
        if counts[start] > max_pulses:
            yield from _split_event(batch, start, source, max_pulses)
            start += 1
            continue
        stop = start
        pulses = 0
        while (
            stop < batch.n_events
            and stop - start < max_events
            and counts[stop] <= max_pulses
            and pulses + counts[stop] <= max_pulses
        ):
            pulses += int(counts[stop])
            stop += 1
        yield _frame(batch, source, slice(start, stop))
        start = stop


def batch_frame(batch: EventBatch, source: str) -> PulseFrame:
    """All of a batch's events as one frame of whole events, however large (in-process use)."""
    return _frame(batch, source, slice(0, batch.n_events))


def _split_event(
    batch: EventBatch, index: int, source: str, max_pulses: int
) -> Iterator[PulseFrame]:
    first, last = int(batch.offsets[index]), int(batch.offsets[index + 1])
    bounds = [*range(first, last, max_pulses), last]
    n_parts = len(bounds) - 1
    for part, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        yield _frame(
            batch, source, slice(index, index + 1), pulses=slice(lo, hi), part=part, n_parts=n_parts
        )


def _frame(
    batch: EventBatch,
    source: str,
    events: slice,
    *,
    pulses: slice | None = None,
    part: int = 0,
    n_parts: int = 1,
) -> PulseFrame:
    """Events `events` of the batch; `pulses` narrows a single event to one part."""
    if pulses is None:
        pulses = slice(int(batch.offsets[events.start]), int(batch.offsets[events.stop]))
    n = events.stop - events.start
    return PulseFrame(
        source=source,
        emitted_at_ns=0,
        event_id=batch.event_id[events].astype(np.int64),
        part=np.full(n, part, np.int32),
        n_parts=np.full(n, n_parts, np.int32),
        pulse_count=np.array([pulses.stop - pulses.start], np.int32)
        if n_parts > 1
        else batch.pulse_counts[events].astype(np.int32),
        sensor_id=batch.sensor_id[pulses].astype(np.int16),
        time=batch.time[pulses].astype(np.int64),
        charge=batch.charge[pulses].astype(np.float32),
        auxiliary=batch.auxiliary[pulses].astype(np.bool_),
        geometry_id=batch.geometry.identity,
    )
