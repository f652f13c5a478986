from collections.abc import Callable

import numpy as np
import pytest

from icecube_stream.config import Settings
from icecube_stream.events.batch import EventBatch
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.wire.codec import AvroCodec
from icecube_stream.wire.topics import PULSES, topic_codec


def _make_batch(pulse_counts: list[int], seed: int = 0) -> EventBatch:
    """Events with the given pulse counts; pulse values encode (event, index) for checks."""
    rng = np.random.default_rng(seed)
    counts = np.asarray(pulse_counts, np.int64)
    n = int(counts.sum())
    return EventBatch(
        geometry=icecube_geometry(),
        event_id=np.arange(1000, 1000 + counts.size, dtype=np.int64),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        sensor_id=rng.integers(0, 5160, n).astype(np.int16),
        time=np.arange(n, dtype=np.int64) * 3,
        charge=rng.uniform(0.2, 5, n),
        auxiliary=rng.random(n) < 0.5,
    )


@pytest.fixture(scope="session")
def frame_codec() -> AvroCodec:
    return topic_codec(PULSES, Settings().topics_dir)


BatchFactory = Callable[[list[int]], EventBatch]


@pytest.fixture
def make_batch() -> BatchFactory:
    return _make_batch
