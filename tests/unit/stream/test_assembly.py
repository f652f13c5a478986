import random
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pytest

from icecube_stream.stream.assembly import Assembler
from icecube_stream.stream.events import Events
from icecube_stream.stream.framing import frames_from_batch

pytestmark = pytest.mark.unit

SECOND = 1_000_000_000


class One(NamedTuple):
    event_id: int
    n_pulses: int
    time: np.ndarray
    complete: bool
    tokens: tuple[object, ...]


def each(ready: list[Events]) -> list[One]:
    """The released events one by one, to check them event by event."""
    out = []
    for events in ready:
        offsets = events.pulses.offsets
        for k in range(events.n_events):
            time = events.pulses.time[offsets[k] : offsets[k + 1]]
            out.append(One(int(events.event_id[k]), int(events.pulse_count[k]), time,
                           bool(events.complete[k]), events.tokens[k]))  # fmt: skip
    return out


def test_whole_events_pass_straight_through(make_batch) -> None:
    batch = make_batch([3, 4, 5])
    frame = next(frames_from_batch(batch, "b", 10, 100))
    ready, duplicates, refused = Assembler(SECOND).add(frame, token="m0", now_ns=0)
    assert duplicates == 0 and refused == []
    assert len(ready) == 1 and np.shares_memory(ready[0].pulses.time, frame.time)  # no copy
    events = each(ready)
    assert [e.event_id for e in events] == [1000, 1001, 1002]
    assert [e.n_pulses for e in events] == [3, 4, 5]
    assert events[1].time.tolist() == batch.time[3:7].tolist()
    assert all(e.complete and e.tokens == ("m0",) for e in events)


def test_interleaved_reordered_and_duplicated_parts_assemble_exactly_once(make_batch) -> None:
    batch = make_batch([120, 7, 95, 260, 2])
    frames = list(frames_from_batch(batch, "b", 3, 50))
    delivery = [*frames, frames[1], frames[5]]  # two duplicate parts
    random.Random(7).shuffle(delivery)
    assembler = Assembler(SECOND)
    released = []
    dropped = 0
    for i, frame in enumerate(delivery):
        ready, duplicates, refused = assembler.add(frame, token=i, now_ns=i)
        assert refused == []
        released += each(ready)
        dropped += duplicates
    assert sorted(e.event_id for e in released if e.n_pulses > 50) == [1000, 1002, 1003]
    by_id = {e.event_id: e for e in released}
    for k, event_id in enumerate(batch.event_id.tolist()):
        lo, hi = batch.offsets[k], batch.offsets[k + 1]
        assert by_id[event_id].time.tolist() == batch.time[lo:hi].tolist()
        assert by_id[event_id].complete
    assert assembler.pending == 0
    split = [e for e in released if e.n_pulses > 50]
    assert len(split) == 3  # duplicates of finished events are not released again
    assert dropped == 2  # frames 1 and 5 are parts of split events, delivered twice
    assert len(released) == batch.n_events
    assert all(len(e.tokens) >= 2 for e in split)


def test_missing_parts_are_released_incomplete_after_the_timeout(make_batch) -> None:
    frames = list(frames_from_batch(make_batch([130]), "b", 10, 50))
    assembler = Assembler(timeout_ns=SECOND)
    assert assembler.add(frames[0], "m0", now_ns=0) == ([], 0, [])
    assert assembler.add(frames[2], "m2", now_ns=10) == ([], 0, [])
    assert assembler.expire(now_ns=SECOND - 1) == []
    (event,) = each(assembler.expire(now_ns=SECOND))
    assert not event.complete
    assert event.n_pulses == 50 + 30
    assert event.tokens == ("m0", "m2")
    assert assembler.pending == 0
    np.testing.assert_array_equal(event.time[:50], frames[0].time)
    late = assembler.add(frames[1], "m1", now_ns=SECOND + 1)  # too late: refused, with why
    assert (late.ready, late.duplicates) == ([], 0)
    assert [(r.event_id, r.reason) for r in late.refused] == [(1000, "late-part")]
    assert assembler.add(frames[0], "m0", now_ns=SECOND + 2).duplicates == 1  # a mere copy


def test_parts_that_disagree_on_their_number_refuse_the_whole_event(make_batch) -> None:
    first, second, _ = frames_from_batch(make_batch([130]), "b", 10, 50)
    assembler = Assembler(SECOND)
    assembler.add(first, "m0", now_ns=0)
    liar = replace(second, n_parts=np.array([4], np.int32))
    added = assembler.add(liar, "m1", now_ns=1)
    assert added.ready == []
    assert [(r.tokens, r.reason) for r in added.refused] == [(("m0", "m1"), "parts-disagree")]
    assert assembler.pending == 0


@pytest.mark.parametrize("when", ["pending", "released"])
def test_a_part_number_seen_again_with_other_pulses_is_a_reused_event_id(make_batch, when) -> None:
    frames = list(frames_from_batch(make_batch([130]), "b", 10, 50))
    assembler = Assembler(SECOND)
    for k, frame in enumerate(frames if when == "released" else frames[:1]):
        assembler.add(frame, f"m{k}", now_ns=k)
    other = replace(frames[0], time=frames[0].time + 7)
    added = assembler.add(other, "x", now_ns=10)
    assert [(r.tokens, r.reason) for r in added.refused] == [(("x",), "event-id-reused")]
    assert added.duplicates == 0
