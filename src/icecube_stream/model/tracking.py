"""Training tracked in MLflow: params, per-epoch metrics, plots, the model, registry and alias.

The alias (`champion` by default) is what serving loads, so it only moves to a new version that
beats the current champion on this run's validation events (both scored on the same events), or
when the caller forces it with `promote=True`; either way the reason is recorded as a tag on the
version and returned to the caller.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import polars as pl
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.pyfunc.model import PythonModel
from numpy.typing import NDArray

from icecube_stream.config import Settings
from icecube_stream.events.evaluate import linefit_reconstructor
from icecube_stream.events.format import EventDataset
from icecube_stream.events.geometry import Geometry, icecube_geometry, require_same_geometry
from icecube_stream.model import plots
from icecube_stream.model.batching import bucketed_batches, padding_fraction, random_batches
from icecube_stream.model.calibration import calibration_report
from icecube_stream.model.configs import TrainConfig
from icecube_stream.model.data import LabelledSet, labelled, load_events, select
from icecube_stream.model.inference import DirectionModel
from icecube_stream.model.train import EpochReport, evaluate_loss, fit, validation_mask
from icecube_stream.physics.angles import angular_distance_angles

MODEL_ARTIFACT = "direction_model"


class ModelLoadError(ValueError):
    """A model URI that does not resolve to a direction model."""


class DirectionPyfunc(PythonModel):
    """MLflow pyfunc face of a DirectionModel: pulses (Kaggle columns) in, one row per event out.

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
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
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


@dataclass(frozen=True)
class TrainOutcome:
    run_id: str
    model_version: str
    promoted: bool
    reason: str
    val_mean_angular_error: float
    val_median_angular_error: float
    champion_val_mean_angular_error: float | None
    linefit_val_mean_angular_error: float
    calibration: dict[str, Any]
    train_seconds: float
    n_train: int
    n_val: int
    model: DirectionModel

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "model"}
        out["calibration"] = {k: v for k, v in self.calibration.items() if k != "curve"}
        return out


@dataclass
class Hooks:
    """Progress callbacks for the CLI; all optional."""

    on_loaded: Callable[[int, int], None] | None = None  # (n_train, n_val)
    on_step: Callable[[int], None] | None = None
    on_epoch: Callable[[EpochReport], None] | None = None
    on_message: Callable[[str], None] | None = None


def _say(hooks: Hooks, message: str) -> None:
    if hooks.on_message is not None:
        hooks.on_message(message)


def split_data(data: Path | str, config: TrainConfig) -> tuple[LabelledSet, LabelledSet]:
    """Train / validation sets from one data set (validation chosen by event_id hash)."""
    limit = None
    if config.max_train_events is not None:
        limit = int(np.ceil(config.max_train_events / (1.0 - config.validation_fraction)))
    batch = load_events(data, max_events=limit)
    in_val = validation_mask(batch.event_id, config.validation_fraction)
    if in_val.all() or not in_val.any():
        raise ValueError(f"{batch.n_events} events are too few to split train/validation")
    return labelled(select(batch, ~in_val), config.features), labelled(
        select(batch, in_val), config.features
    )


def _log_figures(
    val: LabelledSet, errors: NDArray[np.float64], lf_errors: NDArray[np.float64], cal: Any
) -> None:
    types = val.batch.extra.get("event_type")
    event_types = None if types is None else np.asarray(types).astype(str)
    figures = {
        "error_histograms.png": plots.error_histograms(errors, lf_errors, event_types),
        "error_vs_pulses.png": plots.error_vs(
            val.batch.pulse_counts, errors, lf_errors, "pulses per event"
        ),
        "model_vs_linefit.png": plots.model_vs_linefit(errors, lf_errors),
        "calibration.png": plots.calibration_curve(
            cal["curve"]["levels"], cal["curve"]["observed"]
        ),
    }
    if "energy" in val.batch.extra:
        figures["error_vs_energy.png"] = plots.error_vs(
            val.batch.extra["energy"], errors, lf_errors, "neutrino energy (GeV)"
        )
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"plots/{name}")
        plots.close(figure)


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
        {"event_id": [1], "azimuth": [0.0], "zenith": [0.0], "sigma": [0.1], "kappa": [100.0]}
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
    client = MlflowClient(settings.mlflow_tracking_uri)
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
            f"{note} scores {champion_error:.4f} rad on this run's validation set, "
            f"the new version v{version} {mean_error:.4f} rad"
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


def train_and_register(
    data: Path | str,
    config: TrainConfig,
    settings: Settings,
    promote: bool = False,
    hooks: Hooks | None = None,
    geometry: Geometry | None = None,
) -> TrainOutcome:
    """Train for `geometry` (IceCube's by default); data of another detector is refused."""
    hooks = hooks or Hooks()
    started = time.perf_counter()
    require_same_geometry(
        geometry or icecube_geometry(),
        EventDataset(data).geometry,
        what=f"the data set {data}",
        fix="To train for that detector, pass its sensor_geometry.csv with --geometry",
    )
    train, val = split_data(data, config)
    if hooks.on_loaded is not None:
        hooks.on_loaded(train.features.n_events, val.features.n_events)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment(settings.mlflow_experiment)
    with mlflow.start_run(run_name=f"{config.name}") as run:
        mlflow.log_params(
            {
                **config.flat_params(),
                "data": str(data),
                "n_train": train.features.n_events,
                "n_val": val.features.n_events,
            }
        )
        lengths = train.features.lengths
        mlflow.log_metrics(
            {
                "padding_fraction_random": padding_fraction(
                    lengths, random_batches(lengths.size, config.batch_size)
                ),
                "padding_fraction_bucketed": padding_fraction(
                    lengths, bucketed_batches(lengths, config.batch_size)
                ),
            }
        )

        def on_epoch(report: EpochReport) -> None:
            mlflow.log_metrics(
                {
                    "train_loss": report.train_loss,
                    "val_loss": report.val_loss,
                    "val_mean_angular_error": report.val_mean_angular_error,
                    "val_median_angular_error": report.val_median_angular_error,
                    "epoch_seconds": report.seconds,
                },
                step=report.epoch,
            )
            if hooks.on_epoch is not None:
                hooks.on_epoch(report)

        net, history = fit(
            config,
            train.features,
            train.targets,
            val.features,
            val.targets,
            on_epoch=on_epoch,
            on_step=hooks.on_step,
        )
        train_seconds = time.perf_counter() - started
        _, errors, _, kappa = evaluate_loss(net, val.features, val.targets)
        assert val.batch.azimuth is not None and val.batch.zenith is not None
        lf_az, lf_zen = linefit_reconstructor(val.batch)
        lf_errors = angular_distance_angles(val.batch.azimuth, val.batch.zenith, lf_az, lf_zen)
        cal = calibration_report(errors, kappa)
        mean_error = float(np.mean(errors))
        mlflow.log_metrics(
            {
                "best_val_mean_angular_error": mean_error,
                "best_val_median_angular_error": float(np.median(errors)),
                "linefit_val_mean_angular_error": float(np.mean(lf_errors)),
                "linefit_val_median_angular_error": float(np.median(lf_errors)),
                "fraction_within_1sigma": cal["fraction_within_1sigma"],
                "fraction_within_2sigma": cal["fraction_within_2sigma"],
                "expected_within_1sigma": cal["expected_within_1sigma"],
                "expected_within_2sigma": cal["expected_within_2sigma"],
                "train_seconds": train_seconds,
                "best_epoch": history.best.epoch,
            }
        )
        _log_figures(val, errors, lf_errors, cal)
        mlflow.log_dict(cal, "calibration.json")

        model = DirectionModel(config.features, config.network, val.batch.geometry, net)
        registration = log_and_register(model, val, settings, promote, config_name=config.name)
        _say(hooks, registration.reason)
    return TrainOutcome(
        run_id=run.info.run_id,
        model_version=registration.version,
        promoted=registration.promoted,
        reason=registration.reason,
        val_mean_angular_error=mean_error,
        val_median_angular_error=float(np.median(errors)),
        champion_val_mean_angular_error=registration.champion_error,
        linefit_val_mean_angular_error=float(np.mean(lf_errors)),
        calibration=cal,
        train_seconds=train_seconds,
        n_train=train.features.n_events,
        n_val=val.features.n_events,
        model=model,
    )
