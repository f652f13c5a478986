"""Loading a labelled data set into memory as features + unit-vector targets (I/O lives here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from icecube_stream.events.batch import EventBatch, concat_batches
from icecube_stream.events.dataset import EventDataset
from icecube_stream.events.layout import EventDataError
from icecube_stream.model.classifier import starting_truth, track_truth
from icecube_stream.model.features import FeatureConfig, PulseFeatures, features_from_batch
from icecube_stream.physics.angles import angles_to_vector


@dataclass(frozen=True)
class LabelledSet:
    batch: EventBatch
    features: PulseFeatures
    targets: NDArray[np.float64]  # (n, 3) unit source directions
    #: 1 track-like, 0 cascade, NaN unknown (data without `event_type`, e.g. real events).
    track: NDArray[np.float64]
    #: 1 starting track, 0 another known type, NaN unknown.
    starting: NDArray[np.float64]


def load_events(
    data: Path | str,
    max_events: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> EventBatch:
    """All events of a Kaggle-layout data set (first `max_events`), truth required."""
    dataset = EventDataset(data)
    batches = []
    for batch in dataset.iter_batches(events_per_chunk=8192, max_events=max_events):
        batches.append(batch)
        if on_batch is not None:
            on_batch(batch.n_events)
    if not batches:
        raise EventDataError(Path(data), "no events")
    merged = concat_batches(batches)
    if merged.azimuth is None or merged.zenith is None:
        raise EventDataError(Path(data), "no truth (azimuth/zenith) to train or evaluate against")
    return merged


def labelled(batch: EventBatch, config: FeatureConfig) -> LabelledSet:
    assert batch.azimuth is not None and batch.zenith is not None
    return LabelledSet(
        batch=batch,
        features=features_from_batch(batch, config),
        targets=angles_to_vector(batch.azimuth, batch.zenith),
        track=track_truth(batch.extra.get("event_type"), batch.n_events),
        starting=starting_truth(batch.extra.get("event_type"), batch.n_events),
    )


def select(batch: EventBatch, mask: NDArray[np.bool_]) -> EventBatch:
    """The events of `batch` where mask is True (pulses follow)."""
    lengths = batch.pulse_counts
    pulse_mask = np.repeat(mask, lengths)
    kept = lengths[mask]
    return EventBatch(
        geometry=batch.geometry,
        event_id=batch.event_id[mask],
        offsets=np.concatenate([[0], np.cumsum(kept)]).astype(np.int64),
        sensor_id=batch.sensor_id[pulse_mask],
        time=batch.time[pulse_mask],
        charge=batch.charge[pulse_mask],
        auxiliary=batch.auxiliary[pulse_mask],
        azimuth=None if batch.azimuth is None else batch.azimuth[mask],
        zenith=None if batch.zenith is None else batch.zenith[mask],
        extra={k: v[mask] for k, v in batch.extra.items()},
    )
