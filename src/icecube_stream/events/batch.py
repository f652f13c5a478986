"""Many events back to back as flat numpy arrays: the in-memory unit of every stage.

The simulator makes them, `dataset.py` reads and writes them, reconstructors, features, frames
and benchmarks consume them; none of that needs files, so this module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from icecube_stream.events.geometry import Geometry
from icecube_stream.events.layout import PULSE_SCHEMA


@dataclass(frozen=True)
class EventBatch:
    """Many events back to back as flat numpy arrays: the unit every reconstructor consumes.

    Pulses of event k are rows offsets[k]:offsets[k+1]. Truth (azimuth, zenith) is None for
    unlabelled data; `extra` carries simulator truth such as event_type and energy.
    """

    geometry: Geometry
    event_id: NDArray[np.int64]
    offsets: NDArray[np.int64]
    sensor_id: NDArray[np.int16]
    time: NDArray[np.int64]
    charge: NDArray[np.float64]
    auxiliary: NDArray[np.bool_]
    azimuth: NDArray[np.float64] | None = None
    zenith: NDArray[np.float64] | None = None
    extra: dict[str, NDArray[Any]] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return int(self.event_id.size)

    @property
    def n_pulses(self) -> int:
        return int(self.time.size)

    @property
    def positions(self) -> NDArray[np.float64]:
        return self.geometry.positions[self.sensor_id]

    @property
    def pulse_counts(self) -> NDArray[np.int64]:
        return np.diff(self.offsets)

    def pulses_frame(self) -> pl.DataFrame:
        """Pulses in the Kaggle column layout and dtypes (event_id as a column)."""
        return pl.DataFrame(
            {
                "event_id": np.repeat(self.event_id, self.pulse_counts),
                "sensor_id": self.sensor_id,
                "time": self.time,
                "charge": self.charge,
                "auxiliary": self.auxiliary,
            },
            schema=PULSE_SCHEMA,
        )


def concat_batches(batches: list[EventBatch]) -> EventBatch:
    """Join batches that share a geometry (keeps truth and extras only when all have them)."""
    if not batches:
        raise ValueError("nothing to concatenate")
    counts = np.concatenate([b.pulse_counts for b in batches])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    has_truth = all(b.azimuth is not None and b.zenith is not None for b in batches)
    extra_keys = set.intersection(*(set(b.extra) for b in batches))
    return EventBatch(
        geometry=batches[0].geometry,
        event_id=np.concatenate([b.event_id for b in batches]),
        offsets=offsets,
        sensor_id=np.concatenate([b.sensor_id for b in batches]),
        time=np.concatenate([b.time for b in batches]),
        charge=np.concatenate([b.charge for b in batches]),
        auxiliary=np.concatenate([b.auxiliary for b in batches]),
        azimuth=np.concatenate([b.azimuth for b in batches if b.azimuth is not None])
        if has_truth
        else None,
        zenith=np.concatenate([b.zenith for b in batches if b.zenith is not None])
        if has_truth
        else None,
        extra={k: np.concatenate([b.extra[k] for b in batches]) for k in sorted(extra_keys)},
    )


def take_events(batch: EventBatch, start: int, stop: int) -> EventBatch:
    """Events start..stop-1 of a batch, offsets rebased to 0."""
    lo, hi = int(batch.offsets[start]), int(batch.offsets[stop])
    return EventBatch(
        geometry=batch.geometry,
        event_id=batch.event_id[start:stop],
        offsets=batch.offsets[start : stop + 1] - lo,
        sensor_id=batch.sensor_id[lo:hi],
        time=batch.time[lo:hi],
        charge=batch.charge[lo:hi],
        auxiliary=batch.auxiliary[lo:hi],
        azimuth=None if batch.azimuth is None else batch.azimuth[start:stop],
        zenith=None if batch.zenith is None else batch.zenith[start:stop],
        extra={k: v[start:stop] for k, v in batch.extra.items()},
    )
