"""From a step's prediction records to its alerts (pure): the policy, the containment radii and
the notice of each selected event, with what its sky map needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.alerts.notice import CONTAINMENT, alert_record
from icecube_stream.alerts.policy import AlertPolicy
from icecube_stream.alerts.rates import AlertRates
from icecube_stream.physics.vmf import kappa_from_sigma, vmf_radius


@dataclass(frozen=True)
class Alert:
    event_id: int
    notice: dict[str, Any]  # the alerts topic's value
    ra: float  # radians, the sky map's centre
    dec: float
    kappa: float  # the sky map's concentration
    event_time_ns: int


def policy_selects(
    records: list[dict[str, Any]], policy: AlertPolicy
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Each record's kappa, 90 % radius and whether the policy makes it an alert."""
    track = np.array([np.nan if r["track_probability"] is None else r["track_probability"]
                      for r in records])  # fmt: skip
    charge = np.array([r["charge"] for r in records], np.float64)
    kappa = kappa_from_sigma(np.array([r["angular_uncertainty"] for r in records]))
    radius90 = vmf_radius(kappa, CONTAINMENT)
    return kappa, radius90, policy.select(track, charge, radius90)


def select_alerts(
    records: list[dict[str, Any]],
    policy: AlertPolicy,
    rates: AlertRates,
    *,
    trigger_rate_hz: float,
    skymap_url: Callable[[int], str],
    alert_time_ns: int,
) -> list[Alert]:
    """The alerts among `records`; `skymap_url(event_id)` says where each one's map goes."""
    if not records:
        return []
    kappa, radius90, selected = policy_selects(records, policy)
    chosen = np.flatnonzero(selected).tolist()
    radius50 = vmf_radius(kappa[chosen], 0.5)
    alerts = []
    for k, r50 in zip(chosen, radius50.tolist(), strict=True):
        record = records[k]
        notice = alert_record(
            record,
            radius50=r50,
            radius90=float(radius90[k]),
            healpix_url=skymap_url(record["event_id"]),
            rates=rates,
            trigger_rate_hz=trigger_rate_hz,
            alert_time_ns=alert_time_ns,
        )
        alerts.append(
            Alert(
                record["event_id"], notice, record["ra"], record["dec"], float(kappa[k]),
                record["event_time_ns"],
            )
        )  # fmt: skip
    return alerts
