from pathlib import Path

import pytest

from icecube_stream.events.batch import EventBatch, concat_batches, take_events
from icecube_stream.events.dataset import DatasetWriter
from icecube_stream.events.geometry import Geometry, icecube_geometry
from icecube_stream.events.simulator import Simulator


@pytest.fixture(scope="session")
def geometry() -> Geometry:
    return icecube_geometry()


@pytest.fixture(scope="session")
def events(geometry: Geometry) -> EventBatch:
    """600 simulated events (seed 3), in memory."""
    return concat_batches(list(Simulator(geometry, seed=3).iter_batches(600)))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, geometry: Geometry) -> Path:
    """An untrained tiny model saved as a model directory: commands load it like any model,
    without MLflow."""
    import torch

    from icecube_stream.model.features import FeatureConfig
    from icecube_stream.model.inference import DirectionModel
    from icecube_stream.model.network import NetworkConfig

    torch.manual_seed(0)
    network = NetworkConfig(d_model=16, n_context=1, ff_dim=32)
    model = DirectionModel(FeatureConfig(max_pulses=24), network, geometry)
    return model.save(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="session")
def labelled_dir(tmp_path_factory: pytest.TempPathFactory, events: EventBatch) -> Path:
    """The first 300 of `events` as a Kaggle-layout train split with truth, 120 per file."""
    root = tmp_path_factory.mktemp("labelled")
    with DatasetWriter(root, events.geometry, events_per_file=120) as writer:
        writer.append(take_events(events, 0, 300))
    return root
