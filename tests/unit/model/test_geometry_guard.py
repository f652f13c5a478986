"""A model knows its detector: it records the geometry identity and refuses any other."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from icecube_stream.config import Settings
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.events.dataset import DatasetWriter, EventDataset
from icecube_stream.events.geometry import (
    ICECUBE_GEOMETRY_ID,
    GeometryMismatchError,
    from_positions,
    icecube_geometry_path,
    read_geometry_csv,
)
from icecube_stream.events.layout import GEOMETRY_FILE
from icecube_stream.model.configs import get_config
from icecube_stream.model.features import FeatureConfig
from icecube_stream.model.inference import DirectionModel
from icecube_stream.model.network import NetworkConfig
from icecube_stream.model.predict import COLUMNS, predict_dataset
from icecube_stream.model.training_run import train_and_register

pytestmark = pytest.mark.unit


@pytest.fixture
def model(events: EventBatch) -> DirectionModel:
    return DirectionModel(
        FeatureConfig(max_pulses=16), NetworkConfig(d_model=16, n_context=1, ff_dim=32),
        events.geometry,
    )  # fmt: skip


def moved(events: EventBatch, sensor: int, by: float) -> EventBatch:
    positions = events.geometry.positions.copy()
    positions[sensor, 2] += by
    return replace(events, geometry=from_positions(positions))


def written(root: Path, events: EventBatch) -> Path:
    with DatasetWriter(root, events.geometry) as writer:
        writer.append(events)
    return root


def test_the_identity_is_saved_and_checked_on_load(model: DirectionModel, tmp_path: Path) -> None:
    directory = model.save(tmp_path / "m")
    config = json.loads((directory / "config.json").read_text())
    assert config["geometry_id"] == ICECUBE_GEOMETRY_ID
    assert DirectionModel.load(directory).geometry.identity == ICECUBE_GEOMETRY_ID
    config["geometry_id"] = "0123456789abcdef"
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json says 0123456789abcdef"):
        DirectionModel.load(directory)


def test_predict_refuses_another_detector_naming_the_worst_sensor(
    model: DirectionModel, events: EventBatch, tmp_path: Path
) -> None:
    other = moved(events, sensor=2500, by=-1.5)
    with pytest.raises(GeometryMismatchError) as raised:
        predict_dataset(model, EventDataset(written(tmp_path / "other", other)))
    message = str(raised.value)
    assert other.geometry.identity in message and ICECUBE_GEOMETRY_ID in message
    assert "largest 1.50 m at sensor 2500" in message and "--geometry" in message
    table = predict_dataset(model, EventDataset(written(tmp_path / "same", events)))
    assert table.columns == list(COLUMNS) and table.height == events.n_events
    assert table["event_id"].to_list() == events.event_id.tolist()
    assert np.allclose(np.linalg.norm(table.select("x", "y", "z").to_numpy(), axis=1), 1.0)


def test_train_refuses_a_data_set_of_another_detector_before_loading_it(
    events: EventBatch, tmp_path: Path
) -> None:
    root = written(tmp_path / "other", moved(events, sensor=0, by=1.0))
    # No MLflow server behind this address: the refusal must come first.
    settings = Settings(mlflow_port=1)
    with pytest.raises(GeometryMismatchError, match="To train for that detector"):
        train_and_register(root, get_config("quick"), settings)


@pytest.mark.parametrize(
    ("shift_m", "passes"),
    [(0.0, True), (0.004, True), (0.5, False), (1.5, False)],
    ids=["published-file", "4mm", "0.5m", "1.5m"],
)
def test_data_with_the_published_geometry_file_passes_a_moved_one_does_not(
    tiny_model_dir: Path, events: EventBatch, tmp_path: Path, shift_m: float, passes: bool
) -> None:
    """Real Kaggle data carries Kaggle's sensor_geometry.csv, which the package ships byte for
    byte: a model of the simulator's detector takes it as it is. There is no tolerance beyond the
    identity's rounding to whole centimetres: every sensor moved 0.5 m is refused like 1.5 m."""
    model = DirectionModel.load(tiny_model_dir)
    root = written(tmp_path / "data", take_events(events, 0, 50))
    if shift_m == 0.0:
        shutil.copyfile(icecube_geometry_path(), root / GEOMETRY_FILE)
    else:
        positions = read_geometry_csv(icecube_geometry_path())
        positions[:, 0] += shift_m
        lines = ["sensor_id,x,y,z"] + [
            f"{i},{x},{y},{z}" for i, (x, y, z) in enumerate(positions.tolist())
        ]
        (root / GEOMETRY_FILE).write_text("\n".join(lines) + "\n")
    data = EventDataset(root)
    if passes:
        model.check_geometry(data.geometry)
        assert data.geometry.identity == ICECUBE_GEOMETRY_ID
        assert predict_dataset(model, data).height == 50
        return
    with pytest.raises(GeometryMismatchError) as raised:
        model.check_geometry(data.geometry)
    assert f"5160 of 5160 sensors moved, mean {shift_m:.2f} m" in str(raised.value)
    with pytest.raises(GeometryMismatchError):
        predict_dataset(model, data)
