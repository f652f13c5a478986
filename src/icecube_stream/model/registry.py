"""The model registry: where a trained direction model is stored, promoted and loaded from.

Serving, the demo and the benchmarks load models here; training (`training_run.py`) registers
them here. Nothing here trains or draws, so a model server importing this module pulls in
neither the training code nor matplotlib.

The alias (`champion` by default) is what serving loads, so it only moves to a new version that
beats the current champion on the same validation events (both scored here), or when the caller
forces it with `promote=True`; either way the reason is recorded as a tag on the version and
returned to the caller.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import polars as pl
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.pyfunc.model import PythonModel

from icecube_stream.config import Settings
from icecube_stream.connections import mlflow_tracking_uri
from icecube_stream.model.data import LabelledSet
from icecube_stream.model.inference import DirectionModel
from icecube_stream.physics.angles import angular_distance_angles

MODEL_ARTIFACT = "direction_model"


class ModelLoadError(ValueError):
    """A model URI that does not resolve to a direction model."""


class DirectionPyfunc(PythonModel):
    """MLflow pyfunc face of a DirectionModel: pulses (Kaggle columns) in, one row per event out
    (angles, sigma and calibrated kappa, track_probability: NaN for a model without a classifier).

        Holds no weights when pickled; `load_context` reads them from the logged artifact.
    """

    def load_context(self, context: Any) -> None:
        self.model = DirectionModel.load(Path(context.artifacts[MODEL_ARTIFACT]))

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        frame = (
            model_input if isinstance(model_input, pl.DataFrame) else pl.from_pandas(model_input)
        )
        event_id = frame["event_id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, event_id[1:] != event_id[:-1]])
        offsets = np.r_[starts, event_id.size].astype(np.int64)
        pred = self.model.predict(
            frame["sensor_id"].to_numpy(),
            frame["time"].to_numpy(),
            frame["charge"].to_numpy(),
            frame["auxiliary"].to_numpy().astype(bool),
            offsets,
        )
        return pl.DataFrame(
            {
                "event_id": event_id[starts],
                "azimuth": pred.azimuth,
                "zenith": pred.zenith,
                "sigma": pred.sigma,
                "kappa": pred.kappa,
                "track_probability": pred.track_probability,
            }
        ).to_pandas()


def resolve_uri(model: str, settings: Settings) -> str:
    """`champion` (the configured alias) or any MLflow model URI / local model directory."""
    if model in (settings.model_alias, "champion"):
        return f"models:/{settings.model_name}@{settings.model_alias}"
    return model


def load_model(model: str, settings: Settings) -> DirectionModel:
    """A DirectionModel from the registry alias, an MLflow URI or a local directory."""
    local = Path(model)
    if not local.exists():
        mlflow.set_tracking_uri(mlflow_tracking_uri(settings))
        uri = resolve_uri(model, settings)
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        except (MlflowException, OSError) as error:
            raise ModelLoadError(f"cannot load model {uri!r}: {error}") from None
    configs = sorted(local.rglob("config.json"))
    candidates = [c.parent for c in configs if (c.parent / "weights.pt").is_file()]
    if not candidates:
        raise ModelLoadError(f"{model!r} holds no direction model (config.json + weights.pt)")
    try:
        return DirectionModel.load(candidates[0])
    except ValueError as error:
        raise ModelLoadError(f"cannot load model {model!r}: {error}") from None


def _champion_error(
    client: MlflowClient, settings: Settings, val: LabelledSet
) -> tuple[str | None, float | None, str]:
    """(version, its validation mean error, note) of the current champion, if any."""
    try:
        current = client.get_model_version_by_alias(settings.model_name, settings.model_alias)
    except MlflowException:
        return None, None, "no champion yet"
    try:
        champion = load_model(f"models:/{settings.model_name}/{current.version}", settings)
    except ModelLoadError as error:
        # Saved by an older feature set or format: it cannot serve with this code either.
        return None, None, f"champion v{current.version}: {error}"
    if champion.geometry.identity != val.batch.geometry.identity:
        # Trained for another detector: it cannot serve this detector's data either.
        return (
            None,
            None,
            (
                f"champion v{current.version} was trained for geometry "
                f"{champion.geometry.identity}, this data set's is {val.batch.geometry.identity}"
            ),
        )
    try:
        pred = champion.predict_features(
            champion.featurize(
                val.batch.sensor_id,
                val.batch.time,
                val.batch.charge,
                val.batch.auxiliary,
                val.batch.offsets,
            )
        )
    except ValueError as error:
        return current.version, None, f"champion v{current.version} cannot be scored ({error})"
    assert val.batch.azimuth is not None and val.batch.zenith is not None
    errors = angular_distance_angles(val.batch.azimuth, val.batch.zenith, pred.azimuth, pred.zenith)
    return current.version, float(np.mean(errors)), f"champion v{current.version}"


@dataclass(frozen=True)
class Registration:
    version: str
    promoted: bool
    reason: str
    val_mean_angular_error: float
    champion_error: float | None


def _signature() -> Any:
    """Input/output schema of the pyfunc (pulses in, one row per event out)."""
    from mlflow.models import infer_signature

    pulses = pl.DataFrame(
        {"event_id": [1], "sensor_id": [0], "time": [6000], "charge": [1.0], "auxiliary": [False]},
        schema={
            "event_id": pl.Int64,
            "sensor_id": pl.Int16,
            "time": pl.Int64,
            "charge": pl.Float64,
            "auxiliary": pl.Boolean,
        },
    ).to_pandas()
    out = pl.DataFrame(
        {
            "event_id": [1],
            "azimuth": [0.0],
            "zenith": [0.0],
            "sigma": [0.1],
            "kappa": [100.0],
            "track_probability": [0.5],
        }
    ).to_pandas()
    return infer_signature(pulses, out)


def log_and_register(
    model: DirectionModel,
    val: LabelledSet,
    settings: Settings,
    promote: bool = False,
    config_name: str = "",
) -> Registration:
    """Log `model` to the active run, register a version, move the alias if it earned it.

    "Earned" means a lower mean angular error than the current champion on `val`, both scored
    here on the same events; `promote` forces the move and the reason says so.
    """
    client = MlflowClient(mlflow_tracking_uri(settings))
    assert val.batch.azimuth is not None and val.batch.zenith is not None
    pred = model.predict_features(val.features)
    mean_error = float(
        np.mean(
            angular_distance_angles(val.batch.azimuth, val.batch.zenith, pred.azimuth, pred.zenith)
        )
    )
    champion_version, champion_error, note = _champion_error(client, settings, val)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = model.save(Path(tmp) / MODEL_ARTIFACT)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=DirectionPyfunc(),
            artifacts={MODEL_ARTIFACT: str(model_dir)},
            registered_model_name=settings.model_name,
            signature=_signature(),
            pip_requirements=["icecube-stream", "torch", "numpy", "polars"],
        )
    version = str(info.registered_model_version)
    if champion_error is None:
        better = champion_version is None
        reason = f"{note}: " + ("nothing to beat" if better else "kept, not comparable")
    else:
        better = mean_error < champion_error
        reason = (
            f"{note} scores {math.degrees(champion_error):.3f}° on this run's validation set, "
            f"the new version v{version} {math.degrees(mean_error):.3f}°"
        )
    promoted = better or promote
    if promote and not better:
        reason += "; promoted anyway because --promote was given"
    elif promoted:
        reason += f"; v{version} is the new {settings.model_alias}"
    else:
        reason += f"; {settings.model_alias} kept"
    if promoted:
        client.set_registered_model_alias(settings.model_name, settings.model_alias, version)
    for key, value in (
        ("val_mean_angular_error", f"{mean_error:.6f}"),
        ("config", config_name),
        ("geometry_id", model.geometry.identity),
        ("promotion", reason),
    ):
        client.set_model_version_tag(settings.model_name, version, key, value)
    mlflow.set_tags(
        {
            "promoted": str(promoted),
            "promotion": reason,
            "model_version": version,
            "geometry_id": model.geometry.identity,
        }
    )
    return Registration(version, promoted, reason, mean_error, champion_error)
