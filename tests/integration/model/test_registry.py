"""The model in the live MLflow: saved and loaded back identically; the champion alias moves
only on improvement (or when forced)."""

from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from icecube_stream.config import Settings
from icecube_stream.model import inference
from icecube_stream.model.configs import get_config
from icecube_stream.model.data import LabelledSet, labelled, load_events
from icecube_stream.model.features import FeatureConfig
from icecube_stream.model.inference import DirectionModel
from icecube_stream.model.network import NetworkConfig
from icecube_stream.model.registry import Registration, load_model, log_and_register
from icecube_stream.model.train import fit

pytestmark = pytest.mark.integration

FEATURES = FeatureConfig(max_pulses=24)
TINY = NetworkConfig(d_model=16, n_context=1, ff_dim=32)


@pytest.fixture(scope="module")
def data(small_dataset: Path) -> LabelledSet:
    return labelled(load_events(small_dataset), FEATURES)


@pytest.fixture(scope="module")
def trained(data: LabelledSet) -> DirectionModel:
    config = replace(get_config("quick"), network=TINY, features=FEATURES, epochs=3, batch_size=64)
    net, _ = fit(config, data.features, data.targets, data.features, data.targets)
    return DirectionModel(FEATURES, TINY, data.batch.geometry, net)


def _flipped(model: DirectionModel, tmp_path: Path) -> DirectionModel:
    """A clearly worse model: the same network, every output direction reversed."""
    worse = DirectionModel.load(model.save(tmp_path / "flipped"))
    with torch.no_grad():
        worse.net.prior_weight.neg_()
        worse.net.dipole_weight.neg_()
        last = worse.net.head[-1]
        last.weight[:3].neg_()
        last.bias[:3].neg_()
    return worse


def _register(
    model: DirectionModel, data: LabelledSet, settings: Settings, promote: bool = False
) -> Registration:
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment(settings.mlflow_experiment)
    with mlflow.start_run():
        return log_and_register(model, data, settings, promote=promote)


def _champion(settings: Settings) -> str:
    client = MlflowClient(settings.mlflow_tracking_uri)
    return str(client.get_model_version_by_alias(settings.model_name, settings.model_alias).version)


def test_model_loaded_back_from_mlflow_predicts_identically(
    isolated: Settings, data: LabelledSet, trained: DirectionModel
) -> None:
    registration = _register(trained, data, isolated)
    assert registration.promoted and "no champion yet: nothing to beat" in registration.reason
    b = data.batch
    args = (b.sensor_id, b.time, b.charge, b.auxiliary, b.offsets)
    before = trained.predict(*args)
    for uri in ("champion", f"models:/{isolated.model_name}/{registration.version}"):
        after = load_model(uri, isolated).predict(*args)
        np.testing.assert_array_equal(after.direction, before.direction)
        np.testing.assert_array_equal(after.kappa, before.kappa)
    # The pyfunc face (what a generic MLflow consumer loads) gives the same angles.
    pyfunc = mlflow.pyfunc.load_model(f"models:/{isolated.model_name}@{isolated.model_alias}")
    out = pyfunc.predict(b.pulses_frame().to_pandas())
    np.testing.assert_array_equal(out["event_id"].to_numpy(), b.event_id)
    np.testing.assert_allclose(out["azimuth"].to_numpy(), before.azimuth)
    np.testing.assert_allclose(out["zenith"].to_numpy(), before.zenith)


def test_champion_moves_only_on_improvement(
    isolated: Settings, data: LabelledSet, trained: DirectionModel, tmp_path: Path
) -> None:
    worse = _flipped(trained, tmp_path)
    first = _register(worse, data, isolated)
    assert first.promoted and _champion(isolated) == first.version

    better = _register(trained, data, isolated)
    assert better.champion_error == pytest.approx(first.val_mean_angular_error)
    assert better.val_mean_angular_error < first.val_mean_angular_error
    assert better.promoted and _champion(isolated) == better.version

    again_worse = _register(worse, data, isolated)
    assert not again_worse.promoted
    assert "kept" in again_worse.reason
    assert _champion(isolated) == better.version

    forced = _register(worse, data, isolated, promote=True)
    assert forced.promoted and "--promote" in forced.reason
    assert _champion(isolated) == forced.version


def test_a_champion_this_code_cannot_load_is_replaced(
    isolated: Settings, data: LabelledSet, trained: DirectionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as older_code:
        older_code.setattr(inference, "FORMAT_VERSION", 0)
        old = _register(trained, data, isolated)
    assert _champion(isolated) == old.version
    new = _register(trained, data, isolated)
    assert new.promoted and "cannot load model" in new.reason
    assert _champion(isolated) == new.version
