"""Alert records: GCN's IceCube track-alert notice fields, filled from predictions (pure).

Names and units follow `gcn.notices.icecube.gold_bronze_track_alerts`: degrees for positions
and radii, TeV for the energy, Hz for the false-alarm rate, UTC ISO 8601 times. The topic's
JSON Schema (wire/topics/schemas/alert.v1.schema.json) adds this project's own fields after
those. The event name carries the event id instead of IceCube's per-day letter: a letter is
counted, and a count would differ when a crash replays events, while a name must not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from icecube_stream.alerts.rates import AlertRates

PIPELINE = "icecube-stream realtime track alert"
INSTRUMENT = "IC86"
CONTAINMENT = 0.9


def iso_utc(unix_ns: int) -> str:
    """UTC ISO 8601 with microseconds and a Z, the form GCN's notices use."""
    seconds, nanoseconds = divmod(unix_ns, 10**9)
    moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanoseconds // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_name(event_id: int, event_time_ns: int) -> str:
    return f"IceCube-{datetime.fromtimestamp(event_time_ns // 10**9, tz=UTC):%y%m%d}-{event_id}"


def alert_record(
    prediction: dict[str, Any],
    *,
    radius50: float,
    radius90: float,
    healpix_url: str,
    rates: AlertRates,
    trigger_rate_hz: float,
    alert_time_ns: int,
) -> dict[str, Any]:
    """The notice for one prediction record (stream/sinks/records.py); radii in radians."""
    charge = np.array([prediction["charge"]])
    event_id, event_time = int(prediction["event_id"]), int(prediction["event_time_ns"])
    return {
        "mission": "IceCube",
        "instrument": INSTRUMENT,
        "messenger": "Neutrino",
        "event_name": [event_name(event_id, event_time)],
        "id": [str(event_id)],
        "alert_datetime": iso_utc(alert_time_ns),
        "trigger_time": iso_utc(event_time),
        "alert_type": "initial",
        "alert_tense": "current",
        "analysis_pipeline": PIPELINE,
        "alert_topology": "Track",
        "ra": round(float(np.degrees(prediction["ra"])), 4) % 360.0,
        "dec": round(float(np.degrees(prediction["dec"])), 4),
        "ra_dec_error": round(float(np.degrees(radius90)), 4),
        "containment_probability": CONTAINMENT,
        "systematic_included": False,
        "healpix_url": healpix_url,
        "nu_energy": round(float(rates.nu_energy_at(charge)[0]), 3),
        "p_astro": round(float(rates.p_astro_at(charge)[0]), 5),
        "far": float(f"{rates.far_hz(charge, trigger_rate_hz)[0]:.4g}"),
        "event_id": event_id,
        "trigger_time_source": prediction["event_time_source"],
        "ra_dec_error_50": round(float(np.degrees(radius50)), 4),
        "track_probability": round(float(prediction["track_probability"]), 5),
        "charge": round(float(prediction["charge"]), 3),
        "model_name": prediction["model_name"],
        "model_version": prediction["model_version"],
    }
