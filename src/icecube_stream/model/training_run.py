"""One tracked training run: split the data, fit, log metrics and figures to MLflow, register.

`train.py` is the bare fit loop (no MLflow); this wraps it in an MLflow run, scores the result
beside LineFit, draws the figures (matplotlib) and hands the model to `registry.py`, which decides
whether it becomes the champion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from numpy.typing import NDArray

from icecube_stream.config import Settings
from icecube_stream.connections import mlflow_tracking_uri
from icecube_stream.events.dataset import EventDataset
from icecube_stream.events.evaluate import linefit_reconstructor
from icecube_stream.events.geometry import Geometry, icecube_geometry, require_same_geometry
from icecube_stream.model import plots
from icecube_stream.model.batching import bucketed_batches, padding_fraction, random_batches
from icecube_stream.model.calibration import calibration_report, containment_report
from icecube_stream.model.classifier import classifier_report
from icecube_stream.model.configs import TrainConfig
from icecube_stream.model.data import LabelledSet, labelled, load_events, select
from icecube_stream.model.inference import DirectionModel
from icecube_stream.model.registry import log_and_register
from icecube_stream.model.train import EpochReport, fit, fit_calibration, validation_mask
from icecube_stream.physics.angles import angular_distance, angular_distance_angles


@dataclass(frozen=True)
class TrainOutcome:
    """What `train` reports; `as_dict` is the `train --json` object. Angles are radians, as the
    `_rad` keys say. The MLflow metrics of the run keep their names without the suffix
    (`val_mean_angular_error`, ...): they are radians too, and the names stay comparable with
    the runs already in a tracking server."""

    run_id: str
    model_version: str
    promoted: bool
    reason: str
    val_mean_angular_error_rad: float
    val_median_angular_error_rad: float
    champion_val_mean_angular_error_rad: float | None
    linefit_val_mean_angular_error_rad: float
    calibration: dict[str, Any]
    #: The fitted kappa scales (config.json's `calibration`), the classifier's validation
    #: figures (None when the data has no event types) and the calibrated 50 / 90 % containment.
    kappa_calibration: dict[str, float]
    classifier: dict[str, Any] | None
    containment: dict[str, Any]
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
    mlflow.set_tracking_uri(mlflow_tracking_uri(settings))
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
            train_track=train.track,
            val_track=val.track,
            train_starting=train.starting,
        )
        train_seconds = time.perf_counter() - started
        types = val.batch.extra.get("event_type")
        kappa_calibration = fit_calibration(net, val.features, val.targets, types)
        model = DirectionModel(
            config.features, net.config, val.batch.geometry, net, kappa_calibration
        )
        prediction = model.predict_features(val.features)
        errors = angular_distance(prediction.direction, val.targets)
        kappa, track_probability = prediction.kappa, prediction.track_probability
        assert val.batch.azimuth is not None and val.batch.zenith is not None
        lf_az, lf_zen = linefit_reconstructor(val.batch)
        lf_errors = angular_distance_angles(val.batch.azimuth, val.batch.zenith, lf_az, lf_zen)
        cal = calibration_report(errors, kappa)
        classifier = None if types is None else classifier_report(track_probability, types)
        containment = containment_report(errors, kappa, types)
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
                "kappa_scale_track": kappa_calibration.track_scale,
                "kappa_scale_cascade": kappa_calibration.cascade_scale,
                "kappa_starting_slope": kappa_calibration.starting_slope,
                "val_within_50": containment["fraction_within_50"],
                "val_within_90": containment["fraction_within_90"],
                **({} if classifier is None else {"val_track_accuracy": classifier["accuracy"]}),
            }
        )
        _log_figures(val, errors, lf_errors, cal)
        mlflow.log_dict(cal, "calibration.json")

        registration = log_and_register(model, val, settings, promote, config_name=config.name)
        _say(hooks, registration.reason)
    return TrainOutcome(
        run_id=run.info.run_id,
        model_version=registration.version,
        promoted=registration.promoted,
        reason=registration.reason,
        val_mean_angular_error_rad=mean_error,
        val_median_angular_error_rad=float(np.median(errors)),
        champion_val_mean_angular_error_rad=registration.champion_error,
        linefit_val_mean_angular_error_rad=float(np.mean(lf_errors)),
        calibration=cal,
        kappa_calibration=kappa_calibration.as_dict(),
        classifier=classifier,
        containment=containment,
        train_seconds=train_seconds,
        n_train=train.features.n_events,
        n_val=val.features.n_events,
        model=model,
    )
