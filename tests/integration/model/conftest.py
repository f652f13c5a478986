from pathlib import Path

import pytest

from icecube_stream.events.dataset import DatasetWriter
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.events.simulator import Simulator


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """500 simulated events in the Kaggle layout."""
    root = tmp_path_factory.mktemp("model-data")
    geometry = icecube_geometry()
    with DatasetWriter(root, geometry, events_per_file=250) as writer:
        for batch in Simulator(geometry, seed=21).iter_batches(500):
            writer.append(batch)
    return root
