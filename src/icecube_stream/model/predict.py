"""Directions for a whole data set on disk as one table: `icecube-stream predict`."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from icecube_stream.events.dataset import EventDataset
from icecube_stream.model.inference import DirectionModel

COLUMNS = ("event_id", "azimuth", "zenith", "x", "y", "z", "angular_uncertainty", "kappa")


def predict_dataset(
    model: DirectionModel,
    dataset: EventDataset,
    max_events: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> pl.DataFrame:
    """One row per event, the columns of COLUMNS.

    Data of another detector is refused before any work (GeometryMismatchError).
    """
    model.check_geometry(dataset.geometry)
    parts = []
    for batch in dataset.iter_batches(max_events=max_events):
        pred = model.predict(
            batch.sensor_id, batch.time, batch.charge, batch.auxiliary, batch.offsets
        )
        parts.append(
            pl.DataFrame(
                {
                    "event_id": batch.event_id,
                    "azimuth": pred.azimuth,
                    "zenith": pred.zenith,
                    "x": pred.direction[:, 0],
                    "y": pred.direction[:, 1],
                    "z": pred.direction[:, 2],
                    "angular_uncertainty": pred.sigma,
                    "kappa": pred.kappa,
                }
            )
        )
        if on_batch is not None:
            on_batch(batch.n_events)
    return pl.concat(parts) if parts else pl.DataFrame(schema=dict.fromkeys(COLUMNS, pl.Float64))
