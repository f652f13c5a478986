"""Per-data-set statistics, side by side with what real IceCube events look like.

The reference column is the description of ten real events of the Kaggle batch_1 (DESIGN.md,
"What real events look like") plus the calibration targets of the simulator; it exists so that
anyone can see at a glance whether a simulated (or newly dropped-in real) data set is sane.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.events.format import EventBatch

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


@dataclass(frozen=True)
class DatasetStats:
    pulses: NDArray[np.int64]
    sensors: NDArray[np.int64]
    first_time: NDArray[np.int64]
    last_time: NDArray[np.int64]
    aux_fraction: NDArray[np.float64]
    charges: NDArray[np.float64]  # a prefix sample, enough for a median
    type_counts: dict[str, int]

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
        }


def _distinct_sensors(batch: EventBatch) -> NDArray[np.int64]:
    event_index = np.repeat(np.arange(batch.n_events), batch.pulse_counts)
    keys = np.unique(event_index * batch.geometry.n_sensors + batch.sensor_id.astype(np.int64))
    return np.bincount(keys // batch.geometry.n_sensors, minlength=batch.n_events).astype(np.int64)


def compute_stats(
    batches: Iterable[EventBatch], on_batch: Callable[[int], None] | None = None
) -> DatasetStats:
    pulses, sensors, first, last, aux, charges = [], [], [], [], [], []
    kept_charges = 0
    type_counts: dict[str, int] = {}
    for batch in batches:
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

    def cat(parts: list[NDArray[Any]], dtype: type) -> NDArray[Any]:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    return DatasetStats(
        pulses=cat(pulses, np.int64),
        sensors=cat(sensors, np.int64),
        first_time=cat(first, np.int64),
        last_time=cat(last, np.int64),
        aux_fraction=cat(aux, np.float64),
        charges=cat(charges, np.float64),
        type_counts=type_counts,
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
    """(label, this data set, real reference) rows for printing."""
    return [
        (label, format_value(stats[key]) if key in stats else "-", reference)
        for key, label, reference in REFERENCE
    ]
