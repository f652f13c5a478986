"""A trained model as one object: feature config + network + the geometry it was trained on.

`DirectionModel.predict` is the single inference path (evaluation, benchmark, MLflow pyfunc,
the model server): features from the shared builder, length-bucketed sub-batches so padding stays
small, directions, kappa and the track probability back in the caller's order. The kappa it
returns is calibrated (kappa_calibration.py) when the model carries a calibration, so every
consumer of kappa and sigma gets the same, calibrated numbers. On disk a model is a directory
with config.json (with the geometry identity and the calibration), weights.pt (a state_dict,
loaded with weights_only=True: no pickled code) and geometry.npy.

Format 2 added the classifier output and the calibration, format 3 the starting-track output;
older directories still load: format 1 (a 4-output head, no calibration) predicts a NaN track
probability and the raw kappa, format 2 calibrates without the starting-track term.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray

from icecube_stream.events.geometry import Geometry, from_positions, require_same_geometry
from icecube_stream.model.batching import bucketed_batches
from icecube_stream.model.features import (
    EVENT_FEATURES,
    PULSE_FEATURES,
    FeatureConfig,
    PulseFeatures,
    build_features,
)
from icecube_stream.model.kappa_calibration import KappaCalibration
from icecube_stream.model.network import DirectionNet, NetworkConfig
from icecube_stream.physics.angles import vector_to_angles
from icecube_stream.physics.vmf import sigma_from_kappa

FORMAT_VERSION = 3
#: Formats `load` reads: 1 predates the classifier head and the kappa calibration, 2 the
#: starting-track output.
READABLE_FORMATS = (1, 2, 3)
#: Events per forward pass when predicting; sub-batches are cut from length-sorted events.
INFERENCE_CHUNK = 256


@dataclass(frozen=True)
class Prediction:
    azimuth: NDArray[np.float64]
    zenith: NDArray[np.float64]
    direction: NDArray[np.float64]  # (n, 3) unit vectors, source direction
    kappa: NDArray[np.float64]  # calibrated when the model has a calibration
    sigma: NDArray[np.float64]  # radians, 1 / sqrt(kappa)
    track_probability: NDArray[np.float64]  # P(track-like); NaN when the model has no classifier


class DirectionModel:
    def __init__(
        self,
        features: FeatureConfig,
        network: NetworkConfig,
        geometry: Geometry,
        net: DirectionNet | None = None,
        calibration: KappaCalibration | None = None,
    ) -> None:
        self.features = features
        self.geometry = geometry
        self.net = net if net is not None else DirectionNet(network)
        # The net's own config wins: `fit` drops the classifier for data without event types,
        # and config.json must describe the head the weights have.
        self.network = self.net.config
        self.net.eval()
        self.calibration = calibration

    def check_geometry(self, geometry: Geometry) -> None:
        """Refuse data from another detector: features would put its sensors in wrong places."""
        require_same_geometry(
            self.geometry,
            geometry,
            what="the data",
            fix="The model was trained for the other one: use a model trained on the data's "
            "detector (`icecube-stream train --data DIR --geometry DIR/sensor_geometry.csv`), "
            "or data of the model's detector",
        )

    def featurize(
        self,
        sensor_id: NDArray[np.integer],
        time: NDArray[np.number],
        charge: NDArray[np.number],
        auxiliary: NDArray[np.bool_],
        offsets: NDArray[np.int64],
        checked: bool = False,
    ) -> PulseFeatures:
        return build_features(
            sensor_id, time, charge, auxiliary, offsets, self.geometry, self.features, checked
        )

    def predict_features(self, features: PulseFeatures, chunk: int = INFERENCE_CHUNK) -> Prediction:
        direction, kappa, track_probability, starting_probability = predict_arrays(
            self.net, features, chunk
        )
        if self.calibration is not None:
            kappa = self.calibration.apply(kappa, track_probability, starting_probability)
        azimuth, zenith = vector_to_angles(direction)
        return Prediction(
            azimuth=azimuth,
            zenith=zenith,
            direction=direction,
            kappa=kappa,
            sigma=sigma_from_kappa(kappa),
            track_probability=track_probability,
        )

    def predict(
        self,
        sensor_id: NDArray[np.integer],
        time: NDArray[np.number],
        charge: NDArray[np.number],
        auxiliary: NDArray[np.bool_],
        offsets: NDArray[np.int64],
        chunk: int = INFERENCE_CHUNK,
        checked: bool = False,
    ) -> Prediction:
        """Events back to back (Kaggle columns + offsets) -> one prediction per event;
        `checked` when they passed wire.validation's checks (see build_features)."""
        return self.predict_features(
            self.featurize(sensor_id, time, charge, auxiliary, offsets, checked), chunk
        )

    # ------------------------------------------------------------------ persistence

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "format_version": FORMAT_VERSION,
            "features": self.features.as_dict(),
            "network": self.network.as_dict(),
            "pulse_features": list(PULSE_FEATURES),
            "event_features": list(EVENT_FEATURES),
            "geometry_id": self.geometry.identity,
            "calibration": None if self.calibration is None else self.calibration.as_dict(),
        }
        (directory / "config.json").write_text(json.dumps(config, indent=2))
        torch.save(self.net.state_dict(), directory / "weights.pt")
        np.save(directory / "geometry.npy", self.geometry.positions)
        return directory

    @classmethod
    def load(cls, directory: Path) -> DirectionModel:
        config: dict[str, Any] = json.loads((directory / "config.json").read_text())
        if config.get("format_version") not in READABLE_FORMATS:
            raise ValueError(f"unsupported model format {config.get('format_version')}")
        if config["pulse_features"] != list(PULSE_FEATURES) or config["event_features"] != list(
            EVENT_FEATURES
        ):
            raise ValueError(
                f"trained with another feature set ({len(config['pulse_features'])} pulse / "
                f"{len(config['event_features'])} event features; this code has "
                f"{len(PULSE_FEATURES)} / {len(EVENT_FEATURES)})"
            )
        features = FeatureConfig(**config["features"])
        # Older formats predate the classifier (1) and the starting-track output (1 and 2): their
        # heads have 4 or 5 outputs and their configs no such keys.
        network = NetworkConfig(**{"classifier": False, "starting": False, **config["network"]})
        net = DirectionNet(network)
        state = torch.load(directory / "weights.pt", map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        geometry = from_positions(np.load(directory / "geometry.npy"))
        recorded = config.get("geometry_id", geometry.identity)
        if recorded != geometry.identity:
            raise ValueError(
                f"geometry.npy has identity {geometry.identity}, config.json says {recorded}"
            )
        calibration = config.get("calibration")
        return cls(
            features,
            network,
            geometry,
            net,
            None if calibration is None else KappaCalibration.from_dict(calibration),
        )


class RawOutput(NamedTuple):
    """The network's outputs per event, uncalibrated; a probability is NaN without its head."""

    direction: NDArray[np.float64]  # (n, 3)
    kappa: NDArray[np.float64]
    track_probability: NDArray[np.float64]
    starting_probability: NDArray[np.float64]


def predict_arrays(
    net: DirectionNet, features: PulseFeatures, chunk: int = INFERENCE_CHUNK
) -> RawOutput:
    """The network's outputs in input order, forward passes on length-sorted chunks."""
    n = features.n_events
    direction = np.empty((n, 3), dtype=np.float64)
    kappa = np.empty(n, dtype=np.float64)
    track_probability = np.empty(n, dtype=np.float64)
    starting_probability = np.empty(n, dtype=np.float64)
    was_training = net.training
    net.eval()
    with torch.inference_mode():
        for idx in bucketed_batches(features.lengths, chunk):
            batch = features.pad(idx)
            out = net(
                torch.from_numpy(batch.pulses),
                torch.from_numpy(batch.mask),
                torch.from_numpy(batch.events),
            )
            direction[idx] = out.direction.numpy()
            kappa[idx] = out.kappa.numpy()
            track_probability[idx] = torch.sigmoid(out.track_logit).numpy()
            starting_probability[idx] = torch.sigmoid(out.starting_logit).numpy()
    net.train(was_training)
    return RawOutput(direction, kappa, track_probability, starting_probability)
