"""The worker's columnar events: slices, selections and concatenation keep every column aligned."""

from dataclasses import replace

import numpy as np
import pytest

from icecube_stream.stream.events import Events, by_geometry, concat
from icecube_stream.stream.framing import frames_from_batch

pytestmark = pytest.mark.unit


def test_taking_events_keeps_their_pulses_and_messages_together(make_batch) -> None:  # type: ignore[no-untyped-def]
    batch = make_batch([3, 1, 4, 2])
    events = Events.whole(next(frames_from_batch(batch, "b", 10, 100)), "m0", np.ones(4, bool))
    picked = events.take(np.array([2, 0]))
    assert picked.event_id.tolist() == [1002, 1000]
    assert picked.pulse_count.tolist() == [4, 3]
    assert picked.pulses.time.tolist() == [*batch.time[4:8].tolist(), *batch.time[0:3].tolist()]
    assert picked.tokens == (("m0",), ("m0",))
    assert events.take(np.array([], np.intp)).n_events == 0


def test_concatenated_events_read_back_as_the_frames_they_came_from(make_batch) -> None:  # type: ignore[no-untyped-def]
    frames = list(frames_from_batch(make_batch([3, 1, 4, 2, 5]), "b", 2, 100))
    groups = [Events.whole(f, f"m{k}", np.ones(f.n_events, bool)) for k, f in enumerate(frames)]
    (joined,) = by_geometry(groups)
    assert joined.event_id.tolist() == [1000, 1001, 1002, 1003, 1004]
    assert joined.tokens == (("m0",), ("m0",), ("m1",), ("m1",), ("m2",))
    np.testing.assert_array_equal(joined.pulses.time, np.concatenate([f.time for f in frames]))
    frame = joined.frame("worker", 7)
    assert (frame.n_parts == 1).all() and frame.offsets[-1] == joined.pulses.time.size


def test_events_of_two_detectors_are_never_concatenated(make_batch) -> None:  # type: ignore[no-untyped-def]
    frame = next(frames_from_batch(make_batch([3]), "b", 10, 100))
    one = Events.whole(frame, "a", np.ones(1, bool))
    other = Events.whole(replace(frame, geometry_id="x"), "b", np.ones(1, bool))
    with pytest.raises(ValueError, match="several geometries"):
        concat([one, other])
    assert [g.geometry_id for g in by_geometry([one, other, one])] == [frame.geometry_id, "x"]
