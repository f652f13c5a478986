"""Whole events as the worker holds them: a pulse frame, never one object per event.

The whole events of one message stay slices of its decoded frame; only a split event is copied,
once, when its parts are joined. Each event remembers the message of each of its entries (one for
a whole event, one per part for a split event), so a message is acknowledged only once every
event it carried is done. Events of one detector geometry are concatenated into one batch per
step, checked in one vectorised pass and sent to the model as one frame per request.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from icecube_stream.events.batch import EventBatch
from icecube_stream.stream.framing import batch_frame
from icecube_stream.wire.frame import PulseFrame, concat_frames, select_events

#: The messages each event came from: one per entry (a whole event is one entry, a part is one).
Tokens = tuple[Hashable, ...]


@dataclass(frozen=True)
class Events:
    pulses: PulseFrame  # whole events only: each is part 0 of 1
    emitted_at_ns: NDArray[np.int64]  # per event: a joined event's is its latest part's
    complete: NDArray[np.bool_]  # False for a split event released with parts missing
    tokens: tuple[Tokens, ...]

    @property
    def geometry_id(self) -> str | None:
        return self.pulses.geometry_id

    @property
    def event_id(self) -> NDArray[np.int64]:
        return self.pulses.event_id

    @property
    def pulse_count(self) -> NDArray[np.int32]:
        return self.pulses.pulse_count

    @property
    def n_events(self) -> int:
        return self.pulses.n_events

    def entries(self) -> Iterator[Hashable]:
        """The message of every entry of every event: what finishing them counts down."""
        return itertools.chain.from_iterable(self.tokens)

    @classmethod
    def whole(cls, frame: PulseFrame, token: Hashable, keep: NDArray[np.bool_]) -> Events:
        """The whole events of one message where keep is True: slices when all are kept."""
        if not keep.all():
            frame = select_events(frame, keep)
        n = frame.n_events
        return cls(frame, np.full(n, frame.emitted_at_ns, np.int64), np.ones(n, np.bool_),
                   ((token,),) * n)  # fmt: skip

    @classmethod
    def of_batch(cls, batch: EventBatch) -> Events:
        """A data set's events in the worker's form (from no message)."""
        n = batch.n_events
        return cls(batch_frame(batch, "batch"), np.zeros(n, np.int64), np.ones(n, np.bool_),
                   ((),) * n)  # fmt: skip

    def take(self, index: NDArray[np.intp]) -> Events:
        """The events at these positions, in this order."""
        return Events(
            select_events(self.pulses, index),
            self.emitted_at_ns[index],
            self.complete[index],
            tuple(self.tokens[k] for k in index.tolist()),
        )

    def frame(self, source: str, emitted_at_ns: int) -> PulseFrame:
        """These events as one frame: what the checks and the model server read."""
        return replace(self.pulses, source=source, emitted_at_ns=emitted_at_ns)


def concat(groups: Sequence[Events]) -> Events:
    """Events of one geometry back to back: one copy of each column per step, not per event."""
    if len(groups) == 1:
        return groups[0]
    return Events(
        concat_frames([g.pulses for g in groups]),
        np.concatenate([g.emitted_at_ns for g in groups]),
        np.concatenate([g.complete for g in groups]),
        tuple(itertools.chain.from_iterable(g.tokens for g in groups)),
    )


def by_geometry(groups: Sequence[Events]) -> list[Events]:
    """One batch per geometry, in order of first appearance."""
    grouped: dict[str | None, list[Events]] = {}
    for group in groups:
        if group.n_events:
            grouped.setdefault(group.geometry_id, []).append(group)
    return [concat(same) for same in grouped.values()]
