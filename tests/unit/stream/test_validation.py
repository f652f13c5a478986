import numpy as np
import pytest

from icecube_stream.stream.assembly import Event
from icecube_stream.stream.validation import rejection

pytestmark = pytest.mark.unit


def _event(sensors: list[int], charges: list[float]) -> Event:
    n = len(sensors)
    return Event(
        event_id=7,
        sensor_id=np.array(sensors, np.int16),
        time=np.arange(n, dtype=np.int64),
        charge=np.array(charges, np.float32),
        auxiliary=np.zeros(n, bool),
        emitted_at_ns=0,
        tokens=(),
    )


@pytest.mark.parametrize(
    ("sensors", "charges", "reason"),
    [
        ([1, 2, 3], [1.0, 0.0, 2.5], None),
        ([], [], "empty-event"),
        ([1, 2, 3, 4, 5], [1.0] * 5, "too-many-pulses"),
        ([1, 100, 3], [1.0, 1.0, 1.0], "unknown-sensor"),
        ([-1, 2, 3], [1.0, 1.0, 1.0], "unknown-sensor"),
        ([1, 2, 3], [1.0, np.nan, 1.0], "non-finite"),
        ([1, 2, 3], [1.0, np.inf, 1.0], "non-finite"),
        ([1, 2, 3], [1.0, -0.5, 1.0], "negative-charge"),
    ],
)
def test_each_problem_has_its_reason(
    sensors: list[int], charges: list[float], reason: str | None
) -> None:
    problem = rejection(_event(sensors, charges), n_sensors=100, max_pulses=4)
    assert (problem[0] if problem else None) == reason
    if problem:
        assert "event 7" in problem[1]
