"""Which predictions become alerts: the one place that decides.

An alert is worth a telescope's time when the event is track-like (a muon track points back to
its source within a degree or two; a cascade's direction is tens of degrees wide), bright (the
charge is the energy proxy: astrophysical neutrinos dominate only at high energies) and well
localised (a 90 % region small enough to tile). The thresholds are settings
(`ICECUBE_ALERT_*`); the rule is here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from icecube_stream.config import Settings


@dataclass(frozen=True)
class AlertPolicy:
    min_track_probability: float
    min_charge: float  # p.e., total charge of the event's pulses
    max_radius90: float  # radians

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertPolicy:
        return cls(
            settings.alert_min_track_probability,
            settings.alert_min_charge,
            np.radians(settings.alert_max_radius90_deg),
        )

    def select(
        self,
        track_probability: NDArray[np.float64],
        charge: NDArray[np.float64],
        radius90: NDArray[np.float64],
    ) -> NDArray[np.bool_]:
        """Events to alert on. A model without a classifier (NaN probability) selects none:
        without a topology there is no track alert."""
        with np.errstate(invalid="ignore"):
            return (
                (track_probability >= self.min_track_probability)
                & (charge >= self.min_charge)
                & (radius90 <= self.max_radius90)
            )
