"""Shared fixtures.

`stack` is the real local stack (Kafka, MongoDB wire, Prometheus, MLflow): started when not
running, and at the end only what this session started is stopped. `pipeline` is a whole private
pipeline on it (its own topics, consumer group, Mongo collection, registered model, model server
and worker), so tests never touch what a user runs. `scratch_registry` names every registered
model and experiment a test creates in MLflow, and fails the session if one is left behind.
"""

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from icecube_stream.config import Settings, get_settings
from icecube_stream.stack import manager
from scratch_registry import ScratchRegistry
from support import free_port

COMPONENTS = ["model-server", "worker"]


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    settings = get_settings()
    already = {s.name for s in manager.status(settings) if s.pid is not None}
    manager.up(settings, report=lambda _: None)
    yield settings
    infrastructure = manager.select(settings, manager.INFRASTRUCTURE)
    started_here = [s.name for s in infrastructure if s.name not in already]
    if started_here:
        manager.down(settings, started_here, report=lambda _: None)


@pytest.fixture(scope="session")
def scratch_registry(stack: Settings) -> Iterator[ScratchRegistry]:
    """Every fixture that registers a model or creates an experiment takes its names here and
    removes them at teardown; this runs after all of those (they depend on it) and checks."""
    registry = ScratchRegistry(stack.mlflow_tracking_uri)
    yield registry
    assert registry.leftovers() == [], "tests left these in MLflow"


@pytest.fixture
def isolated(stack: Settings, scratch_registry: ScratchRegistry) -> Iterator[Settings]:
    """The live stack's settings with a registered-model name and experiment of this test only,
    so tests never move the real `icecube-direction` champion; both removed afterwards."""
    with scratch_registry.isolated(stack, "it-direction", "it-model") as settings:
        yield settings


@pytest.fixture(scope="session")
def events() -> Any:
    """6,000 simulated events with truth (seed 41)."""
    from icecube_stream.events.batch import concat_batches
    from icecube_stream.events.geometry import icecube_geometry
    from icecube_stream.events.simulator import Simulator

    return concat_batches(list(Simulator(icecube_geometry(), seed=41).iter_batches(6000)))


@pytest.fixture(scope="session")
def champion(
    stack: Settings, scratch_registry: ScratchRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Any]]:
    """A tiny model, trained in seconds and registered as champion under a name of its own
    (removed from MLflow, with its experiment, at the end of the session)."""
    import mlflow
    import torch

    from icecube_stream.events.dataset import DatasetWriter
    from icecube_stream.events.geometry import icecube_geometry
    from icecube_stream.events.simulator import Simulator
    from icecube_stream.model.configs import get_config
    from icecube_stream.model.data import labelled, load_events
    from icecube_stream.model.features import FeatureConfig
    from icecube_stream.model.inference import DirectionModel
    from icecube_stream.model.network import NetworkConfig
    from icecube_stream.model.registry import log_and_register
    from icecube_stream.model.train import fit

    root = tmp_path_factory.mktemp("e2e-train")
    geometry = icecube_geometry()
    with DatasetWriter(root, geometry, events_per_file=500) as writer:
        for batch in Simulator(geometry, seed=40).iter_batches(500):
            writer.append(batch)
    features = FeatureConfig(max_pulses=32)
    network = NetworkConfig(d_model=16, n_context=1, ff_dim=32)
    data = labelled(load_events(root), features)
    config = replace(get_config("quick"), network=network, features=features, epochs=2)
    torch.manual_seed(0)
    net, _ = fit(
        config, data.features, data.targets, data.features, data.targets,
        train_track=data.track, val_track=data.track, train_starting=data.starting,
    )  # fmt: skip
    model = DirectionModel(features, network, geometry, net)
    with scratch_registry.isolated(stack, "e2e-direction", "e2e") as settings:
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        mlflow.set_experiment(settings.mlflow_experiment)
        with mlflow.start_run():
            log_and_register(model, data, settings, promote=True)
        yield settings, model


@pytest.fixture(scope="module")
def pipeline(
    champion: tuple[Settings, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Model server and worker processes on free ports, wired to topics of this module only."""
    from pymongo import MongoClient

    from icecube_stream.stream import topics

    tag = uuid.uuid4().hex[:8]
    settings = champion[0].model_copy(
        update={
            "state_dir": Path(tmp_path_factory.mktemp("e2e-state")),
            "topic_prefix": f"e2e-{tag}.",
            "worker_app_id": f"e2e-worker-{tag}",
            "mongo_collection": f"e2e_{tag}",
            "model_server_port": free_port(),
            "worker_web_port": free_port(),
            "assembly_timeout_s": 5.0,
            "health_timeout_s": 180.0,
            # The tiny champion's classifier and uncertainty mean little: a loose policy lets
            # the brighter tenth of the events become alerts, so every sink is exercised.
            "alert_min_track_probability": 0.0,
            "alert_min_charge": 400.0,
            "alert_max_radius90_deg": 180.0,
        }
    )
    topics.apply(settings)
    try:
        manager.up(settings, COMPONENTS, report=lambda _: None)
        yield settings
    finally:
        manager.down(settings, COMPONENTS, report=lambda _: None)
        database = MongoClient(settings.mongo_url)[settings.mongo_database]
        database.drop_collection(settings.mongo_collection)
        database.drop_collection(settings.mongo_alerts_collection)
