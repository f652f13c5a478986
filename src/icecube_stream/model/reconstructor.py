"""A trained model as a reconstructor for `icecube_stream.events.evaluate`.

The evaluate logic only wants (azimuth, zenith) per batch; the model also predicts kappa and a
track probability, which this wrapper records in call order so the same single pass can report
calibration, containment and the classifier's accuracy afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.events.batch import EventBatch
from icecube_stream.model.calibration import calibration_report, containment_report
from icecube_stream.model.classifier import classifier_report
from icecube_stream.model.inference import DirectionModel


class ModelReconstructor:
    def __init__(self, model: DirectionModel) -> None:
        self.model = model
        self._kappa: list[NDArray[np.float64]] = []
        self._track_probability: list[NDArray[np.float64]] = []

    def __call__(self, batch: EventBatch) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        self.model.check_geometry(batch.geometry)
        pred = self.model.predict(
            batch.sensor_id, batch.time, batch.charge, batch.auxiliary, batch.offsets
        )
        self._kappa.append(pred.kappa)
        self._track_probability.append(pred.track_probability)
        return pred.azimuth, pred.zenith

    @property
    def kappa(self) -> NDArray[np.float64]:
        """The model's (calibrated, when it has a calibration) kappa per event so far."""
        return np.concatenate(self._kappa) if self._kappa else np.zeros(0)

    @property
    def track_probability(self) -> NDArray[np.float64]:
        return np.concatenate(self._track_probability) if self._track_probability else np.zeros(0)

    def calibration(self, errors: NDArray[np.float64]) -> dict[str, Any]:
        """Coverage figures for the events reconstructed so far (errors in the same order)."""
        report = calibration_report(errors, self.kappa)
        report.pop("curve")
        return report

    def containment(
        self, errors: NDArray[np.float64], event_types: NDArray[Any] | None
    ) -> dict[str, Any]:
        """50 % / 90 % containment overall and per event type (when the data set has types)."""
        return containment_report(errors, self.kappa, event_types)

    def classifier(self, event_types: NDArray[Any] | None) -> dict[str, Any] | None:
        """Track/cascade accuracy; None without event types or without a classifier."""
        if event_types is None:
            return None
        return classifier_report(self.track_probability, event_types)

    def report(
        self, errors: NDArray[np.float64], event_types: NDArray[Any] | None
    ) -> dict[str, Any]:
        """The sections `evaluate` adds for a model: calibration, containment and, when the
        model has a classifier and the data event types, classifier."""
        out = {
            "calibration": self.calibration(errors),
            "containment": self.containment(errors, event_types),
        }
        classifier = self.classifier(event_types)
        if classifier is not None:
            out["classifier"] = classifier
        return out
