"""Directions for a whole data set on disk as one table, and the files `icecube-stream predict`
writes from it: Parquet with every column, or the Kaggle submission CSV."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from icecube_stream.events.dataset import EventDataset
from icecube_stream.model.inference import DirectionModel

#: Angles and sigma in radians. `sigma` and `angular_uncertainty` are the same number: the first
#: is the name the model's pyfunc and Kaggle-minded users expect, the second the model API's.
#: `track_probability` is NaN for a model without a classifier.
COLUMNS = (
    "event_id",
    "azimuth",
    "zenith",
    "sigma",
    "x",
    "y",
    "z",
    "angular_uncertainty",
    "kappa",
    "track_probability",
)
#: The competition's submission columns; azimuth in [0, 2pi), zenith in [0, pi], radians.
KAGGLE_COLUMNS = ("event_id", "azimuth", "zenith")
FORMATS = {".parquet": "Parquet, every column", ".csv": "Kaggle submission CSV"}


def output_format(out: Path) -> str:
    """What `out` will hold, by its suffix; refused before any work when unknown."""
    try:
        return FORMATS[out.suffix.lower()]
    except KeyError:
        known = " or ".join(FORMATS)
        raise ValueError(f"{out}: the output file must end in {known}") from None


def predict_dataset(
    model: DirectionModel,
    dataset: EventDataset,
    max_events: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> pl.DataFrame:
    """One row per event, the columns of COLUMNS. Needs no truth: Kaggle's test split has none.

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
                    "sigma": pred.sigma,
                    "x": pred.direction[:, 0],
                    "y": pred.direction[:, 1],
                    "z": pred.direction[:, 2],
                    "angular_uncertainty": pred.sigma,
                    "kappa": pred.kappa,
                    "track_probability": pred.track_probability,
                }
            )
        )
        if on_batch is not None:
            on_batch(batch.n_events)
    if parts:
        return pl.concat(parts)
    return pl.DataFrame(schema={c: pl.Int64 if c == "event_id" else pl.Float64 for c in COLUMNS})


def write_predictions(table: pl.DataFrame, out: Path) -> None:
    """Parquet keeps every column; CSV is what the Kaggle competition scores."""
    output_format(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        table.select(KAGGLE_COLUMNS).write_csv(out)
    else:
        table.write_parquet(out)
