"""The Kaggle "IceCube - Neutrinos in Deep Ice" layout: file names, column dtypes, and the check.

    ROOT/sensor_geometry.csv          sensor_id,x,y,z
    ROOT/{split}_meta.parquet         batch_id, event_id, first_pulse_index, last_pulse_index,
                                      azimuth, zenith (+ truth extras for simulated data)
    ROOT/{split}/batch_N.parquet      event_id, sensor_id, time, charge, auxiliary

Its own module because the geometry CSV (`geometry.py`), the in-memory batch (`batch.py`) and
the data-set reader (`dataset.py`) all follow it; kept here they depend on it, not on each other.
Every problem found in a file is an `EventDataError` naming the file, because
"KeyError: 'charge'" three frames deep in a pipeline tells an operator nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

GEOMETRY_FILE = "sensor_geometry.csv"
GEOMETRY_SCHEMA: dict[str, pl.DataType] = {
    "sensor_id": pl.Int64(),
    "x": pl.Float64(),
    "y": pl.Float64(),
    "z": pl.Float64(),
}
PULSE_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.Int64(),
    "sensor_id": pl.Int16(),
    "time": pl.Int64(),
    "charge": pl.Float64(),
    "auxiliary": pl.Boolean(),
}
META_SCHEMA: dict[str, pl.DataType] = {
    "batch_id": pl.Int64(),
    "event_id": pl.Int64(),
    "first_pulse_index": pl.Int64(),
    "last_pulse_index": pl.Int64(),
    "azimuth": pl.Float64(),
    "zenith": pl.Float64(),
}
TRUTH_COLUMNS = ("azimuth", "zenith")


class EventDataError(ValueError):
    """A data file is missing, malformed or inconsistent; the message names file and problem."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


def _kind_ok(actual: pl.DataType, expected: pl.DataType) -> bool:
    """Accept the same kind of dtype (any integer width for ints, any float for floats)."""
    if expected.is_integer():
        return actual.is_integer()
    if expected.is_float():
        return actual.is_float()
    return actual == expected


def check_schema(
    path: Path, schema: Mapping[str, pl.DataType], expected: Mapping[str, pl.DataType]
) -> None:
    """Raise EventDataError for missing columns or columns of the wrong kind."""
    missing = [name for name in expected if name not in schema]
    if missing:
        raise EventDataError(path, f"missing column(s) {missing}; found {list(schema)}")
    wrong = [
        f"'{name}' is {schema[name]}, expected {dtype}"
        for name, dtype in expected.items()
        if not _kind_ok(schema[name], dtype)
    ]
    if wrong:
        raise EventDataError(path, "wrong dtype: " + "; ".join(wrong))
