import pytest

from icecube_stream.events.batch import EventBatch, concat_batches
from icecube_stream.events.geometry import Geometry, icecube_geometry
from icecube_stream.events.simulator import Simulator


@pytest.fixture(scope="session")
def geometry() -> Geometry:
    return icecube_geometry()


@pytest.fixture(scope="session")
def events(geometry: Geometry) -> EventBatch:
    """600 simulated events (seed 3), in memory."""
    return concat_batches(list(Simulator(geometry, seed=3).iter_batches(600)))
