import numpy as np
import pytest

from icecube_stream.wire.validation import TIME_LIMIT_NS, Limits, event_problems, repeated_entries

pytestmark = pytest.mark.unit

LIMITS = Limits(n_sensors=100, max_pulses=4, max_span_ns=1000)


def problems_of(sensors: list[int], charges: list[float], times: list[int] | None = None):  # type: ignore[no-untyped-def]
    """The problems of a batch: event 6 (two good pulses), then event 7 as given, then event 8."""
    n = len(sensors)
    sensor_id = np.array([1, 2, *sensors, 3], np.int16)
    time = np.array([0, 5, *(times if times is not None else range(n)), 9], np.int64)
    charge = np.array([1.0, 1.0, *charges, 1.0], np.float32)
    offsets = np.array([0, 2, 2 + n, 3 + n], np.int64)
    return event_problems(np.array([6, 7, 8]), sensor_id, time, charge, offsets, LIMITS)


@pytest.mark.parametrize(
    ("sensors", "charges", "times", "reason"),
    [
        ([1, 2, 3], [1.0, 0.0, 2.5], None, None),
        ([], [], None, "empty-event"),
        ([1, 2, 3, 4, 5], [1.0] * 5, None, "too-many-pulses"),
        ([1, 100, 3], [1.0, 1.0, 1.0], None, "unknown-sensor"),
        ([-1, 2, 3], [1.0, 1.0, 1.0], None, "unknown-sensor"),
        ([1, 2, 3], [1.0, np.nan, 1.0], None, "non-finite"),
        ([1, 2, 3], [1.0, np.inf, 1.0], None, "non-finite"),
        ([1, 2, 3], [1.0, -0.5, 1.0], None, "negative-charge"),
        ([1, 2, 3], [1.0] * 3, [0, np.iinfo(np.int64).max, 2], "time-out-of-range"),
        ([1, 2, 3], [1.0] * 3, [0, np.iinfo(np.int64).min, 2], "time-out-of-range"),
        ([1, 2, 3], [1.0] * 3, [0, TIME_LIMIT_NS + 1, 2], "time-out-of-range"),
        ([1, 2, 3], [1.0] * 3, [0, 1001, 2], "event-too-long"),
        ([1, 2, 3], [1.0] * 3, [5000, 6000, 5500], None),  # 1000 ns: at the limit
    ],
)
def test_each_problem_has_its_reason_and_names_only_its_event(
    sensors: list[int], charges: list[float], times: list[int] | None, reason: str | None
) -> None:
    problems = problems_of(sensors, charges, times)
    assert [(p.index, p.event_id, p.reason) for p in problems] == ([(1, 7, reason)] if reason
                                                                  else [])  # fmt: skip
    if problems:
        assert problems[0].detail.startswith("event 7 ")


def test_an_empty_event_last_in_the_batch_is_found() -> None:
    offsets = np.array([0, 2, 2], np.int64)
    arrays = (np.array([1, 2], np.int16), np.array([0, 1]), np.array([1.0, 1.0], np.float32))
    (problem,) = event_problems(np.array([1, 2]), *arrays, offsets, LIMITS)
    assert (problem.event_id, problem.reason) == (2, "empty-event")


def test_a_repeated_event_and_part_in_one_frame_refuses_every_copy() -> None:
    event_id = np.array([5, 6, 5, 9, 9], np.int64)
    part = np.array([0, 0, 0, 0, 1], np.int32)  # 9 part 0 and 9 part 1 are two parts: fine
    assert [(p.index, p.reason) for p in repeated_entries(event_id, part)] == [
        (0, "duplicate-event-id"),
        (2, "duplicate-event-id"),
    ]
