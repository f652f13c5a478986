"""Event assembly: turn frames back into whole events, including events split over messages.

Pure logic, no I/O. Parts may interleave with other events, arrive twice or out of order; an
event whose parts do not all arrive within the timeout is released flagged incomplete, so it is
still predicted (and visibly marked) rather than held forever or silently dropped. A part that
cannot belong to a sane event is refused with a reason instead: parts that disagree on
`n_parts` (the whole event is refused), a part arriving after its event was released
incomplete (`late-part`), or a part whose id and number were seen with other pulses
(`event-id-reused`). An exact copy of a part seen before is a harmless duplicate. Every event
carries the tokens of the messages it came from, so the caller can acknowledge a message only
once all its events are done. Whole events, the common case, pass through as slices of their
frame (stream/events.py); only the parts of split events are kept and joined here.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Collection, Hashable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from icecube_stream.stream.events import Events, Tokens
from icecube_stream.wire.frame import PulseFrame, concat_frames, select_events
from icecube_stream.wire.reasons import Reason


@dataclass(frozen=True)
class _Part:
    """One part of a split event, as it came in one message: a frame of that one entry."""

    pulses: PulseFrame
    token: Hashable

    @property
    def event_id(self) -> int:
        return int(self.pulses.event_id[0])


@dataclass
class _Pending:
    n_parts: int
    first_seen_ns: int
    parts: dict[int, _Part] = field(default_factory=dict)
    digests: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class _Released:
    complete: bool
    digests: dict[int, bytes]  # of the parts it was released with


class Refused(NamedTuple):
    """Entries of a frame (or held parts) that cannot be assembled, and why."""

    event_id: int
    tokens: Tokens  # the message of each refused entry
    reason: Reason
    detail: str


class Added(NamedTuple):
    ready: list[Events]  # the frame's whole events, and the split events it completes
    duplicates: int  # entries that were exact copies of parts seen before: already finished
    refused: list[Refused]  # entries (and pending parts) refused, for the dead-letter topic


def _digest(part: _Part, index: int, n_parts: int) -> bytes:
    """What identifies a part's content, to tell a copy from a reused event id."""
    digest = hashlib.blake2b(f"{index}/{n_parts}".encode(), digest_size=16)
    for array in (part.pulses.sensor_id, part.pulses.time, part.pulses.charge):
        digest.update(array.tobytes())
    return digest.digest()


class Assembler:
    def __init__(self, timeout_ns: int, remember: int = 100_000) -> None:
        self.timeout_ns = timeout_ns
        self.remember = remember
        self._pending: dict[int, _Pending] = {}
        self._done: OrderedDict[int, _Released] = OrderedDict()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def pending_ids(self) -> set[int]:
        return set(self._pending)

    def add(
        self,
        frame: PulseFrame,
        token: Hashable,
        now_ns: int,
        skip: NDArray[np.bool_] | None = None,
    ) -> Added:
        """What this frame completes, duplicates and refuses. Entries where `skip` is True are
        left out (the caller refused them)."""
        wanted = np.ones(frame.n_events, np.bool_) if skip is None else ~skip
        whole = wanted & (frame.n_parts == 1)
        added = Added([Events.whole(frame, token, whole)] if whole.any() else [], 0, [])
        duplicates = 0
        for k in np.flatnonzero(wanted & ~whole).tolist():
            part = _Part(select_events(frame, np.array([k], np.intp)), token)
            duplicates += self._add_part(
                part, int(frame.part[k]), int(frame.n_parts[k]), now_ns, added
            )
        return added._replace(duplicates=duplicates)

    def _add_part(self, part: _Part, index: int, n_parts: int, now_ns: int, added: Added) -> int:
        """File one part; 1 when it was an exact copy of a part seen before, else 0."""
        event_id, digest = part.event_id, _digest(part, index, n_parts)
        released = self._done.get(event_id)
        if released is not None:
            if released.digests.get(index) == digest:
                return 1
            if not released.complete and index not in released.digests:
                reason, detail = Reason.LATE_PART, "arrived after the event was released incomplete"
            else:
                reason, detail = (
                    Reason.EVENT_ID_REUSED,
                    "was seen before with other pulses or parts",
                )
            detail = f"event {event_id} part {index} {detail}"
            added.refused.append(Refused(event_id, (part.token,), reason, detail))
            return 0
        pending = self._pending.get(event_id)
        if pending is None:
            pending = self._pending[event_id] = _Pending(n_parts, now_ns)
        elif pending.n_parts != n_parts:
            detail = f"event {event_id}: parts say {pending.n_parts} and {n_parts} parts"
            del self._pending[event_id]
            tokens = (*(p.token for p in pending.parts.values()), part.token)
            added.refused.append(Refused(event_id, tokens, Reason.PARTS_DISAGREE, detail))
            return 0
        elif index in pending.parts:
            if pending.digests[index] == digest:
                return 1
            detail = f"event {event_id} part {index} came twice with other pulses"
            added.refused.append(Refused(event_id, (part.token,), Reason.EVENT_ID_REUSED, detail))
            return 0
        pending.parts[index], pending.digests[index] = part, digest
        if len(pending.parts) == pending.n_parts:
            added.ready.append(self._release(event_id, complete=True))
        return 0

    def refuse_pending(
        self, event_ids: Collection[int], reason: Reason, detail: str
    ) -> list[Refused]:
        """Drop pending events the caller found wrong (parts on several partitions, say)."""
        refused = []
        for event_id in event_ids:
            pending = self._pending.pop(event_id, None)
            if pending is not None:
                tokens = tuple(p.token for p in pending.parts.values())
                refused.append(Refused(event_id, tokens, reason, detail))
        return refused

    def expire(self, now_ns: int) -> list[Events]:
        """Release, flagged incomplete, every split event waiting longer than the timeout."""
        stale = [
            event_id
            for event_id, pending in self._pending.items()
            if now_ns - pending.first_seen_ns >= self.timeout_ns
        ]
        return [self._release(event_id, complete=False) for event_id in stale]

    def _release(self, event_id: int, complete: bool) -> Events:
        pending = self._pending.pop(event_id)
        parts = [pending.parts[i] for i in sorted(pending.parts)]
        self._done[event_id] = _Released(complete, pending.digests)
        while len(self._done) > self.remember:
            self._done.popitem(last=False)
        joined = concat_frames([p.pulses for p in parts])
        whole = replace(
            joined,
            event_id=joined.event_id[:1],
            part=np.zeros(1, np.int32),
            n_parts=np.ones(1, np.int32),
            pulse_count=np.array([joined.time.size], np.int32),
        )
        return Events(
            whole,
            emitted_at_ns=np.array([max(p.pulses.emitted_at_ns for p in parts)], np.int64),
            complete=np.array([complete]),
            tokens=(tuple(p.token for p in parts),),  # one per part: one entry each
        )
