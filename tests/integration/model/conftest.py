import uuid
from pathlib import Path

import pytest

from icecube_stream.config import Settings
from icecube_stream.events.dataset import DatasetWriter
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.events.simulator import Simulator


@pytest.fixture
def isolated(stack: Settings) -> Settings:
    """The live stack's settings with a registered-model name and experiment of this test only,
    so tests never move the real `icecube-direction` champion."""
    tag = uuid.uuid4().hex[:8]
    return stack.model_copy(
        update={"model_name": f"it-direction-{tag}", "mlflow_experiment": f"it-model-{tag}"}
    )


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """500 simulated events in the Kaggle layout."""
    root = tmp_path_factory.mktemp("model-data")
    geometry = icecube_geometry()
    with DatasetWriter(root, geometry, events_per_file=250) as writer:
        for batch in Simulator(geometry, seed=21).iter_batches(500):
            writer.append(batch)
    return root
