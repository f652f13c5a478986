from pathlib import Path

import pytest

from icecube_stream.events.batch import EventBatch, concat_batches
from icecube_stream.events.dataset import DatasetWriter
from icecube_stream.events.geometry import Geometry, icecube_geometry
from icecube_stream.events.simulator import Simulator


@pytest.fixture(scope="session")
def geometry() -> Geometry:
    return icecube_geometry()


@pytest.fixture(scope="session")
def simulated(geometry: Geometry) -> EventBatch:
    """1,500 simulated events (seed 11), kept in memory."""
    return concat_batches(list(Simulator(geometry, seed=11).iter_batches(1500)))


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory, simulated: EventBatch) -> Path:
    """The same events written in the Kaggle layout, 400 events per batch file."""
    root = tmp_path_factory.mktemp("sim")
    with DatasetWriter(root, simulated.geometry, events_per_file=400) as writer:
        writer.append(simulated)
    return root
