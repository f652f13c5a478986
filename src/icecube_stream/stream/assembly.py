"""Event assembly: turn frames back into whole events, including events split over messages.

Pure logic, no I/O. Parts may interleave with other events, arrive twice or out of order; an
event whose parts do not all arrive within the timeout is released flagged incomplete, so it is
still predicted (and visibly marked) rather than held forever or silently dropped. Every event
carries the tokens of the messages it came from, so the caller can acknowledge a message only
once all its events are done.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Collection, Hashable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from icecube_stream.events.format import EventBatch
from icecube_stream.stream.frames import PulseFrame


@dataclass(frozen=True)
class Event:
    event_id: int
    sensor_id: NDArray[np.int16]
    time: NDArray[np.int64]
    charge: NDArray[np.float32]
    auxiliary: NDArray[np.bool_]
    emitted_at_ns: int
    tokens: tuple[Hashable, ...]  # the message of each of its entries (a part is one entry)
    complete: bool = True
    geometry_id: str | None = None  # of the frame(s) it came in

    @property
    def n_pulses(self) -> int:
        return int(self.time.size)


@dataclass
class _Pending:
    n_parts: int
    first_seen_ns: int
    parts: dict[int, Event] = field(default_factory=dict)


def whole_events(batch: EventBatch) -> list[Event]:
    """A batch's events as the worker holds them after assembly (wire dtypes, no messages)."""
    return [
        Event(
            event_id=int(batch.event_id[k]),
            sensor_id=batch.sensor_id[lo:hi].astype(np.int16),
            time=batch.time[lo:hi].astype(np.int64),
            charge=batch.charge[lo:hi].astype(np.float32),
            auxiliary=batch.auxiliary[lo:hi].astype(np.bool_),
            emitted_at_ns=0,
            tokens=(),
            geometry_id=batch.geometry.identity,
        )
        for k, (lo, hi) in enumerate(itertools.pairwise(batch.offsets.tolist()))
    ]


class Assembler:
    def __init__(self, timeout_ns: int, remember: int = 100_000) -> None:
        self.timeout_ns = timeout_ns
        self.remember = remember
        self._pending: dict[int, _Pending] = {}
        self._done: OrderedDict[int, None] = OrderedDict()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(
        self, frame: PulseFrame, token: Hashable, now_ns: int, skip: Collection[int] = ()
    ) -> tuple[list[Event], int]:
        """The events this frame completes (its whole events and any split event it finishes),
        and how many of its entries were duplicate parts, dropped and so already finished.
        Entries numbered in `skip` are left out (the caller refused them)."""
        ready = []
        duplicates = 0
        offsets = frame.offsets
        for k in range(frame.n_events):
            if k in skip:
                continue
            lo, hi = int(offsets[k]), int(offsets[k + 1])
            piece = Event(
                event_id=int(frame.event_id[k]),
                sensor_id=frame.sensor_id[lo:hi],
                time=frame.time[lo:hi],
                charge=frame.charge[lo:hi],
                auxiliary=frame.auxiliary[lo:hi],
                emitted_at_ns=frame.emitted_at_ns,
                tokens=(token,),
                geometry_id=frame.geometry_id,
            )
            n_parts = int(frame.n_parts[k])
            if n_parts == 1:
                ready.append(piece)
                continue
            part = int(frame.part[k])
            pending = self._pending.get(piece.event_id)
            if piece.event_id in self._done or (pending is not None and part in pending.parts):
                duplicates += 1  # a part seen before, or a late part of a released event
                continue
            if pending is None:
                pending = self._pending[piece.event_id] = _Pending(n_parts, now_ns)
            pending.parts[part] = piece
            if len(pending.parts) == pending.n_parts:
                ready.append(self._release(piece.event_id, complete=True))
        return ready, duplicates

    def expire(self, now_ns: int) -> list[Event]:
        """Release, flagged incomplete, every split event waiting longer than the timeout."""
        stale = [
            event_id
            for event_id, pending in self._pending.items()
            if now_ns - pending.first_seen_ns >= self.timeout_ns
        ]
        return [self._release(event_id, complete=False) for event_id in stale]

    def _release(self, event_id: int, complete: bool) -> Event:
        pending = self._pending.pop(event_id)
        parts = [pending.parts[i] for i in sorted(pending.parts)]
        self._done[event_id] = None
        while len(self._done) > self.remember:
            self._done.popitem(last=False)
        return Event(
            event_id=event_id,
            sensor_id=np.concatenate([p.sensor_id for p in parts]),
            time=np.concatenate([p.time for p in parts]),
            charge=np.concatenate([p.charge for p in parts]),
            auxiliary=np.concatenate([p.auxiliary for p in parts]),
            emitted_at_ns=max(p.emitted_at_ns for p in parts),
            tokens=tuple(t for p in parts for t in p.tokens),  # one per part: one entry each
            complete=complete,
            geometry_id=parts[0].geometry_id,
        )
