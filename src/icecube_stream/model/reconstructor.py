"""A trained model as a reconstructor for `icecube_stream.events.evaluate`.

The evaluate logic only wants (azimuth, zenith) per batch; the model also predicts kappa, which
this wrapper records in call order so the same single pass can report calibration afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.events.batch import EventBatch
from icecube_stream.model.calibration import calibration_report
from icecube_stream.model.inference import DirectionModel


class ModelReconstructor:
    def __init__(self, model: DirectionModel) -> None:
        self.model = model
        self._kappa: list[NDArray[np.float64]] = []

    def __call__(self, batch: EventBatch) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        self.model.check_geometry(batch.geometry)
        pred = self.model.predict(
            batch.sensor_id, batch.time, batch.charge, batch.auxiliary, batch.offsets
        )
        self._kappa.append(pred.kappa)
        return pred.azimuth, pred.zenith

    @property
    def kappa(self) -> NDArray[np.float64]:
        return np.concatenate(self._kappa) if self._kappa else np.zeros(0)

    def calibration(self, errors: NDArray[np.float64]) -> dict[str, Any]:
        """Coverage figures for the events reconstructed so far (errors in the same order)."""
        report = calibration_report(errors, self.kappa)
        report.pop("curve")
        return report
