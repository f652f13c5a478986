"""Whole events as the worker holds them: columns, never one object per event.

The whole events of one message stay slices of its decoded frame; only a split event is copied,
once, when its parts are joined. Each event remembers the message of each of its entries (one for
a whole event, one per part for a split event), so a message is acknowledged only once every
event it carried is done. Events of one detector geometry are concatenated into one batch per
step, checked in one vectorised pass and sent to the model as one frame per request.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from icecube_stream.events.batch import EventBatch
from icecube_stream.wire.frame import PulseFrame, select_events

#: The messages each event came from: one per entry (a whole event is one entry, a part is one).
Tokens = tuple[Hashable, ...]


@dataclass(frozen=True)
class Events:
    geometry_id: str | None
    event_id: NDArray[np.int64]
    pulse_count: NDArray[np.int32]
    sensor_id: NDArray[np.int16]
    time: NDArray[np.int64]
    charge: NDArray[np.float32]
    auxiliary: NDArray[np.bool_]
    emitted_at_ns: NDArray[np.int64]
    complete: NDArray[np.bool_]
    tokens: tuple[Tokens, ...]

    @property
    def n_events(self) -> int:
        return int(self.event_id.size)

    @property
    def offsets(self) -> NDArray[np.int64]:
        return np.concatenate([[0], np.cumsum(self.pulse_count, dtype=np.int64)])

    def entries(self) -> Iterator[Hashable]:
        """The message of every entry of every event: what finishing them counts down."""
        return itertools.chain.from_iterable(self.tokens)

    @classmethod
    def whole(cls, frame: PulseFrame, token: Hashable, keep: NDArray[np.bool_]) -> Events:
        """The whole events of one message where keep is True: slices when all are kept."""
        if not keep.all():
            frame = select_events(frame, keep)
        n = frame.n_events
        return cls(
            geometry_id=frame.geometry_id,
            event_id=frame.event_id,
            pulse_count=frame.pulse_count,
            sensor_id=frame.sensor_id,
            time=frame.time,
            charge=frame.charge,
            auxiliary=frame.auxiliary,
            emitted_at_ns=np.full(n, frame.emitted_at_ns, np.int64),
            complete=np.ones(n, np.bool_),
            tokens=((token,),) * n,
        )

    @classmethod
    def of_batch(cls, batch: EventBatch) -> Events:
        """A data set's events in the worker's form (wire dtypes, from no message)."""
        n = batch.n_events
        return cls(
            geometry_id=batch.geometry.identity,
            event_id=batch.event_id.astype(np.int64),
            pulse_count=batch.pulse_counts.astype(np.int32),
            sensor_id=batch.sensor_id.astype(np.int16),
            time=batch.time.astype(np.int64),
            charge=batch.charge.astype(np.float32),
            auxiliary=batch.auxiliary.astype(np.bool_),
            emitted_at_ns=np.zeros(n, np.int64),
            complete=np.ones(n, np.bool_),
            tokens=((),) * n,
        )

    def take(self, index: NDArray[np.intp]) -> Events:
        """The events at these positions, in this order."""
        offsets = self.offsets
        starts, stops = offsets[index], offsets[index + 1]
        pulses = _ranges(starts, stops)
        return Events(
            geometry_id=self.geometry_id,
            event_id=self.event_id[index],
            pulse_count=self.pulse_count[index],
            sensor_id=self.sensor_id[pulses],
            time=self.time[pulses],
            charge=self.charge[pulses],
            auxiliary=self.auxiliary[pulses],
            emitted_at_ns=self.emitted_at_ns[index],
            complete=self.complete[index],
            tokens=tuple(self.tokens[k] for k in index.tolist()),
        )

    def frame(self, source: str, emitted_at_ns: int) -> PulseFrame:
        """These events as one frame of whole events: what the checks and the model server read."""
        n = self.n_events
        return PulseFrame(
            source=source,
            emitted_at_ns=emitted_at_ns,
            event_id=self.event_id,
            part=np.zeros(n, np.int32),
            n_parts=np.ones(n, np.int32),
            pulse_count=self.pulse_count,
            sensor_id=self.sensor_id,
            time=self.time,
            charge=self.charge,
            auxiliary=self.auxiliary,
            geometry_id=self.geometry_id,
        )


def concat(groups: Sequence[Events]) -> Events:
    """Events of one geometry back to back: one copy of each column per step, not per event."""
    if len(groups) == 1:
        return groups[0]
    geometries = {g.geometry_id for g in groups}
    if len(geometries) != 1:
        raise ValueError(f"events of several geometries: {sorted(map(str, geometries))}")
    return Events(
        geometry_id=groups[0].geometry_id,
        event_id=np.concatenate([g.event_id for g in groups]),
        pulse_count=np.concatenate([g.pulse_count for g in groups]),
        sensor_id=np.concatenate([g.sensor_id for g in groups]),
        time=np.concatenate([g.time for g in groups]),
        charge=np.concatenate([g.charge for g in groups]),
        auxiliary=np.concatenate([g.auxiliary for g in groups]),
        emitted_at_ns=np.concatenate([g.emitted_at_ns for g in groups]),
        complete=np.concatenate([g.complete for g in groups]),
        tokens=tuple(itertools.chain.from_iterable(g.tokens for g in groups)),
    )


def by_geometry(groups: Sequence[Events]) -> list[Events]:
    """One batch per geometry, in order of first appearance."""
    grouped: dict[str | None, list[Events]] = {}
    for group in groups:
        if group.n_events:
            grouped.setdefault(group.geometry_id, []).append(group)
    return [concat(same) for same in grouped.values()]


def _ranges(starts: NDArray[np.int64], stops: NDArray[np.int64]) -> NDArray[np.int64]:
    """Every index in [start, stop) for each pair, back to back."""
    lengths = stops - starts
    if lengths.size == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(lengths)
    shift: NDArray[np.int64] = np.repeat(starts - (ends - lengths), lengths)
    return np.arange(int(ends[-1]), dtype=np.int64) + shift
