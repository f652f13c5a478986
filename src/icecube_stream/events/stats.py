"""Per-data-set statistics, side by side with what real IceCube events look like.

The reference column is the description of ten real events of the Kaggle batch_1 (DESIGN.md,
"What real events look like") plus the calibration targets of the simulator; it exists so that
anyone can see at a glance whether a simulated (or newly dropped-in real) data set is sane.

The depth profile splits the pulses by the hit sensor's z into the ice above the main dust
layer, the dust layer and the clear ice below it (docs/ice.md). It looks at HLC pulses only:
noise is spread evenly over the detector and would blur the difference. Dust shows up as
fewer hit DOMs; the charge and timing of the hits that do happen change less, because a dusty
DOM is hit mostly when the light starts close to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.events.batch import EventBatch
from icecube_stream.events.ice import DUST_LAYER_Z_M

#: (key, label, real-event reference) in display order.
REFERENCE: tuple[tuple[str, str, str], ...] = (
    ("n_events", "events", "-"),
    ("pulses_median", "pulses / event, median", "~50-80 (ten real events: 36-316)"),
    ("pulses_p5_p95", "pulses / event, 5-95 %", "long tail to thousands"),
    ("pulses_max", "pulses / event, max", "thousands"),
    ("sensors_median", "distinct sensors / event, median", "24-148 (ten real events)"),
    ("sensors_p5_p95", "distinct sensors / event, 5-95 %", "24-148 (ten real events)"),
    ("first_time_median_ns", "first pulse time, median (ns)", "~6,000"),
    ("last_time_p5_p95_ns", "last pulse time, 5-95 % (ns)", "15,000-27,000"),
    ("window_median_us", "window last-first, median (us)", "10-20"),
    ("aux_fraction_median", "auxiliary fraction, median", "0.27-0.82 (30-80 %)"),
    ("aux_fraction_p5_p95", "auxiliary fraction, 5-95 %", "0.27-0.82"),
    ("charge_median_pe", "pulse charge, median (p.e.)", "~0.9-1.0"),
)
_MAX_CHARGES = 2_000_000

#: (key, label) of the depth bands, bottom to top: the order `np.digitize` numbers them in.
DEPTH_BANDS: tuple[tuple[str, str], ...] = (
    ("below_dust", f"below the dust (z < {DUST_LAYER_Z_M[0]:.0f} m)"),
    ("dust_layer", f"dust layer ({DUST_LAYER_Z_M[0]:.0f} < z < {DUST_LAYER_Z_M[1]:.0f} m)"),
    ("above_dust", f"above the dust (z > {DUST_LAYER_Z_M[1]:.0f} m)"),
)
#: (key, label, real-ice reference) of the per-band figures, shown one row per figure.
DEPTH_REFERENCE: tuple[tuple[str, str, str], ...] = (
    ("hit_dom_percent", "DOMs with an HLC hit / event (% of band)", "fewest in the dust layer"),
    ("hlc_charge_median_pe", "HLC pulse charge, median (p.e.)", "-"),
    ("hlc_delay_median_ns", "HLC pulse after event's first HLC, median (ns)", "-"),
)
_MAX_DEPTH_SAMPLES = 1_000_000  # per band, enough for a median


@dataclass(frozen=True)
class DepthBand:
    """HLC pulses on the sensors of one depth band, summed over a data set."""

    key: str
    label: str
    sensors: int
    sensor_z: tuple[float, float] | None  # lowest and highest sensor z in the band (m)
    hit_doms: int  # (event, DOM) pairs with at least one HLC pulse
    charges: NDArray[np.float64]  # prefix samples, enough for a median
    delays: NDArray[np.float64]

    def as_dict(self, n_events: int) -> dict[str, Any]:
        def median(values: NDArray[np.float64]) -> float | None:
            return float(np.median(values)) if values.size else None

        return {
            "label": self.label,
            "sensors": self.sensors,
            "sensor_z_m": list(self.sensor_z) if self.sensor_z else None,
            "hit_dom_percent": 100.0 * self.hit_doms / max(self.sensors * n_events, 1),
            "hlc_charge_median_pe": median(self.charges),
            "hlc_delay_median_ns": median(self.delays),
        }


@dataclass(frozen=True)
class DatasetStats:
    pulses: NDArray[np.int64]
    sensors: NDArray[np.int64]
    first_time: NDArray[np.int64]
    last_time: NDArray[np.int64]
    aux_fraction: NDArray[np.float64]
    charges: NDArray[np.float64]  # a prefix sample, enough for a median
    type_counts: dict[str, int]
    depth: tuple[DepthBand, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        if self.pulses.size == 0:
            return {"n_events": 0}
        window_us = (self.last_time - self.first_time) / 1000.0

        def span(values: NDArray[Any]) -> list[float]:
            return [float(np.percentile(values, 5)), float(np.percentile(values, 95))]

        return {
            "n_events": int(self.pulses.size),
            "pulses_median": float(np.median(self.pulses)),
            "pulses_p5_p95": span(self.pulses),
            "pulses_max": int(self.pulses.max()),
            "sensors_median": float(np.median(self.sensors)),
            "sensors_p5_p95": span(self.sensors),
            "first_time_median_ns": float(np.median(self.first_time)),
            "last_time_p5_p95_ns": span(self.last_time),
            "window_median_us": float(np.median(window_us)),
            "aux_fraction_median": float(np.median(self.aux_fraction)),
            "aux_fraction_p5_p95": span(self.aux_fraction),
            "charge_median_pe": float(np.median(self.charges)),
            "event_types": dict(self.type_counts),
            "depth_profile": {band.key: band.as_dict(self.pulses.size) for band in self.depth},
        }


def _distinct_sensors(batch: EventBatch) -> NDArray[np.int64]:
    event_index = np.repeat(np.arange(batch.n_events), batch.pulse_counts)
    keys = np.unique(event_index * batch.geometry.n_sensors + batch.sensor_id.astype(np.int64))
    return np.bincount(keys // batch.geometry.n_sensors, minlength=batch.n_events).astype(np.int64)


def _band_of(z: NDArray[np.float64]) -> NDArray[np.int64]:
    """Index into DEPTH_BANDS for each height z."""
    return np.digitize(z, DUST_LAYER_Z_M).astype(np.int64)


class _DepthAccumulator:
    """Per-band HLC hit counts and charge/delay samples, batch by batch."""

    def __init__(self) -> None:
        n = len(DEPTH_BANDS)
        self.hit_doms = np.zeros(n, dtype=np.int64)
        self.charges: list[list[NDArray[np.float64]]] = [[] for _ in range(n)]
        self.delays: list[list[NDArray[np.float64]]] = [[] for _ in range(n)]
        self.kept = np.zeros(n, dtype=np.int64)
        self.sensor_z: NDArray[np.float64] | None = None

    def add(self, batch: EventBatch) -> None:
        if self.sensor_z is None:
            self.sensor_z = batch.geometry.positions[:, 2]
        event = np.repeat(np.arange(batch.n_events), batch.pulse_counts)
        hlc = np.flatnonzero(~batch.auxiliary)
        event, sensor = event[hlc], batch.sensor_id[hlc].astype(np.int64)
        time, charge = batch.time[hlc].astype(np.float64), batch.charge[hlc]
        first = np.full(batch.n_events, np.inf)
        np.minimum.at(first, event, time)
        band = _band_of(batch.geometry.positions[sensor, 2])
        pairs = np.unique(event * batch.geometry.n_sensors + sensor)
        pair_band = _band_of(batch.geometry.positions[pairs % batch.geometry.n_sensors, 2])
        self.hit_doms += np.bincount(pair_band, minlength=len(DEPTH_BANDS))
        for b in range(len(DEPTH_BANDS)):
            room = _MAX_DEPTH_SAMPLES - int(self.kept[b])
            if room <= 0:
                continue
            sel = np.flatnonzero(band == b)[:room]
            self.charges[b].append(charge[sel])
            self.delays[b].append(time[sel] - first[event[sel]])
            self.kept[b] += sel.size

    def bands(self) -> tuple[DepthBand, ...]:
        if self.sensor_z is None:
            return ()
        sensor_band = _band_of(self.sensor_z)
        result = []
        for b, (key, label) in enumerate(DEPTH_BANDS):
            z = self.sensor_z[sensor_band == b]
            result.append(
                DepthBand(
                    key=key,
                    label=label,
                    sensors=int(z.size),
                    sensor_z=(float(z.min()), float(z.max())) if z.size else None,
                    hit_doms=int(self.hit_doms[b]),
                    charges=_cat(self.charges[b], np.float64),
                    delays=_cat(self.delays[b], np.float64),
                )
            )
        return tuple(result)


def _cat(parts: list[NDArray[Any]], dtype: type) -> NDArray[Any]:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


def compute_stats(
    batches: Iterable[EventBatch], on_batch: Callable[[int], None] | None = None
) -> DatasetStats:
    pulses, sensors, first, last, aux, charges = [], [], [], [], [], []
    kept_charges = 0
    type_counts: dict[str, int] = {}
    depth = _DepthAccumulator()
    for batch in batches:
        depth.add(batch)
        starts = batch.offsets[:-1]
        counts = batch.pulse_counts
        pulses.append(counts)
        sensors.append(_distinct_sensors(batch))
        # Kaggle events are time-ordered, but min/max do not rely on it.
        first.append(np.minimum.reduceat(batch.time, starts))
        last.append(np.maximum.reduceat(batch.time, starts))
        aux.append(np.add.reduceat(batch.auxiliary.astype(np.float64), starts) / counts)
        if kept_charges < _MAX_CHARGES:
            charges.append(batch.charge[: _MAX_CHARGES - kept_charges])
            kept_charges += charges[-1].size
        event_type = batch.extra.get("event_type")
        if event_type is not None:
            names, n = np.unique(np.asarray(event_type).astype(str), return_counts=True)
            for name, count in zip(names.tolist(), n.tolist(), strict=True):
                type_counts[name] = type_counts.get(name, 0) + int(count)
        if on_batch is not None:
            on_batch(batch.n_events)

    return DatasetStats(
        pulses=_cat(pulses, np.int64),
        sensors=_cat(sensors, np.int64),
        first_time=_cat(first, np.int64),
        last_time=_cat(last, np.int64),
        aux_fraction=_cat(aux, np.float64),
        charges=_cat(charges, np.float64),
        type_counts=type_counts,
        depth=depth.bands(),
    )


def format_value(value: Any) -> str:
    if isinstance(value, list):
        return " - ".join(format_value(v) for v in value)
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    return str(value)


def stats_rows(stats: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, this data set, real reference) rows for printing; the depth profile adds one row
    per figure with the bands side by side (above / dust / below)."""
    rows = [
        (label, format_value(stats[key]) if key in stats else "-", reference)
        for key, label, reference in REFERENCE
    ]
    profile = stats.get("depth_profile") or {}
    order = [key for key, _ in reversed(DEPTH_BANDS) if key in profile]
    if order:
        bottom, top = (f"{z:.0f}" for z in DUST_LAYER_Z_M)
        bands = f"z > {top} / {bottom} to {top} / < {bottom} m"
        rows.append(("depth bands, by the hit sensor", "above / dust / below", bands))
    for key, label, reference in DEPTH_REFERENCE if order else ():
        values = [profile[band][key] for band in order]
        shown = " / ".join("-" if v is None else format_value(float(v)) for v in values)
        rows.append((label, shown, reference))
    return rows
