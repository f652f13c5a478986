"""The Kaggle "IceCube - Neutrinos in Deep Ice" on-disk layout, read and written with polars.

    ROOT/sensor_geometry.csv          sensor_id,x,y,z
    ROOT/{split}_meta.parquet         batch_id, event_id, first_pulse_index, last_pulse_index,
                                      azimuth, zenith (+ truth extras for simulated data)
    ROOT/{split}/batch_N.parquet      event_id, sensor_id, time, charge, auxiliary

Real data is ~84 GB, so reading is lazy and chunked: per batch file, only the meta rows of that
batch are collected, and pulses are read as row slices of a few thousand events at a time
(slice pushdown into the parquet scan). Every problem found in the files is raised as an
`EventDataError` naming the file, because "KeyError: 'charge'" three frames deep in a pipeline
tells an operator nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from icecube_stream.events.geometry import Geometry, from_positions, icecube_geometry

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
_BATCH_NAME = re.compile(r"^batch_(\d+)\.parquet$")


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


def _check_schema(
    path: Path, schema: Mapping[str, pl.DataType], expected: Mapping[str, pl.DataType]
) -> None:
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


# ---------------------------------------------------------------------------------- geometry


def read_geometry_csv(path: Path) -> NDArray[np.float64]:
    """Positions (n, 3) indexed by sensor_id; ids must be exactly 0..n-1."""
    if not path.is_file():
        raise EventDataError(path, "geometry file not found")
    frame = pl.read_csv(path)
    # CSV carries no dtypes: whole-number coordinates are read as integers and are fine.
    frame = frame.with_columns(
        [
            pl.col(c).cast(pl.Float64)
            for c in ("x", "y", "z")
            if frame.schema.get(c, pl.Null).is_integer()
        ]
    )
    _check_schema(path, frame.schema, GEOMETRY_SCHEMA)
    if frame.height == 0:
        raise EventDataError(path, "geometry file has no sensors")
    frame = frame.sort("sensor_id")
    ids = frame["sensor_id"].to_numpy()
    if not np.array_equal(ids, np.arange(frame.height)):
        raise EventDataError(path, "sensor_id must run 0..n-1 without gaps or repeats")
    return frame.select("x", "y", "z").to_numpy().astype(np.float64)


def write_geometry_csv(geometry: Geometry, path: Path) -> None:
    pos = geometry.positions
    pl.DataFrame(
        {
            "sensor_id": np.arange(geometry.n_sensors, dtype=np.int64),
            "x": pos[:, 0],
            "y": pos[:, 1],
            "z": pos[:, 2],
        }
    ).write_csv(path)


# ---------------------------------------------------------------------------------- batches


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


# ---------------------------------------------------------------------------------- writing


class DatasetWriter:
    """Writes EventBatches as a Kaggle-layout data set, `events_per_file` events per batch file.

    Meta rows are kept in memory until close() (a few dozen bytes per event), pulses are flushed
    file by file, so writing millions of events needs memory for one batch file only.
    """

    def __init__(
        self,
        root: Path,
        geometry: Geometry,
        split: str = "train",
        events_per_file: int = 200_000,
        first_batch_id: int = 1,
    ) -> None:
        if events_per_file < 1:
            raise ValueError("events_per_file must be at least 1")
        self.root = Path(root)
        self.split = split
        self.events_per_file = events_per_file
        self._batch_id = first_batch_id
        self._pending: list[EventBatch] = []
        self._pending_events = 0
        self._meta: list[pl.DataFrame] = []
        (self.root / split).mkdir(parents=True, exist_ok=True)
        write_geometry_csv(geometry, self.root / GEOMETRY_FILE)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()

    def append(self, batch: EventBatch) -> None:
        if batch.n_events == 0:
            return
        self._pending.append(batch)
        self._pending_events += batch.n_events
        while self._pending_events >= self.events_per_file:
            merged = concat_batches(self._pending)
            head = take_events(merged, 0, self.events_per_file)
            rest = take_events(merged, self.events_per_file, merged.n_events)
            self._write_file(head)
            self._pending = [rest] if rest.n_events else []
            self._pending_events = rest.n_events

    def close(self) -> None:
        if self._pending_events:
            self._write_file(concat_batches(self._pending))
            self._pending, self._pending_events = [], 0
        meta = (
            pl.concat(self._meta, how="vertical")
            if self._meta
            else pl.DataFrame(schema=META_SCHEMA)
        )
        meta.write_parquet(self.root / f"{self.split}_meta.parquet")

    def _write_file(self, batch: EventBatch) -> None:
        path = self.root / self.split / f"batch_{self._batch_id}.parquet"
        batch.pulses_frame().write_parquet(path, statistics=True, row_group_size=100_000)
        columns: dict[str, Any] = {
            "batch_id": np.full(batch.n_events, self._batch_id, dtype=np.int64),
            "event_id": batch.event_id.astype(np.int64),
            "first_pulse_index": batch.offsets[:-1].astype(np.int64),
            "last_pulse_index": (batch.offsets[1:] - 1).astype(np.int64),
        }
        schema = dict(META_SCHEMA)
        if batch.azimuth is not None and batch.zenith is not None:
            columns["azimuth"] = batch.azimuth.astype(np.float64)
            columns["zenith"] = batch.zenith.astype(np.float64)
        else:
            del schema["azimuth"], schema["zenith"]
        frame = pl.DataFrame(columns, schema=schema)
        if batch.extra:
            frame = frame.hstack(pl.DataFrame({k: v for k, v in batch.extra.items()}))
        self._meta.append(frame)
        self._batch_id += 1


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


# ---------------------------------------------------------------------------------- reading


def _pandas_index_column(path: Path) -> str | None:
    """Name of the stored pandas index column, if the file was written from a pandas frame."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    metadata = pq.read_schema(path).pandas_metadata or {}
    stored = [c for c in metadata.get("index_columns", []) if isinstance(c, str)]
    return stored[0] if len(stored) == 1 else None


def scan_pulses(path: Path) -> pl.LazyFrame:
    """A validated lazy scan of one batch file with the Kaggle columns and dtypes.

    event_id may be a column, or the pandas index the original files were written with (named
    `event_id`, or unnamed and stored as `__index_level_0__`).
    """
    if not path.is_file():
        raise EventDataError(path, "batch file not found")
    try:
        scan = pl.scan_parquet(path)
        schema = dict(scan.collect_schema())
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise EventDataError(path, f"not a readable parquet file ({exc})") from exc
    if "event_id" not in schema:
        index = _pandas_index_column(path)
        if index is not None and index in schema:
            scan = scan.rename({index: "event_id"})
            schema["event_id"] = schema.pop(index)
    _check_schema(path, schema, PULSE_SCHEMA)
    return scan.select([pl.col(name).cast(dtype) for name, dtype in PULSE_SCHEMA.items()])


def _derive_meta(path: Path, batch_id: int) -> pl.DataFrame:
    """first/last pulse indices recomputed from a batch file, for data sets without meta."""
    return (
        scan_pulses(path)
        .select("event_id")
        .with_row_index("row")
        .group_by("event_id", maintain_order=True)
        .agg(
            pl.col("row").first().cast(pl.Int64).alias("first_pulse_index"),
            pl.col("row").last().cast(pl.Int64).alias("last_pulse_index"),
        )
        .with_columns(pl.lit(batch_id, dtype=pl.Int64).alias("batch_id"))
        .select("batch_id", "event_id", "first_pulse_index", "last_pulse_index")
        .collect()
    )


class EventDataset:
    """A Kaggle-layout data set on disk, read chunk by chunk with bounded memory."""

    def __init__(
        self, root: Path | str, split: str = "train", geometry: Geometry | None = None
    ) -> None:
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise EventDataError(self.root, "data directory not found")
        if geometry is None:
            geometry_path = self.root / GEOMETRY_FILE
            geometry = (
                from_positions(read_geometry_csv(geometry_path))
                if geometry_path.is_file()
                else icecube_geometry()
            )
        self.geometry = geometry
        self.meta_path = self.root / f"{split}_meta.parquet"
        self.batch_dir = self.root / split
        if not self.batch_dir.is_dir():
            raise EventDataError(self.batch_dir, f"no '{split}' batch directory")
        self._files = self._find_batch_files()

    def _find_batch_files(self) -> dict[int, Path]:
        files: dict[int, Path] = {}
        for path in self.batch_dir.iterdir():
            match = _BATCH_NAME.match(path.name)
            if match:
                files[int(match.group(1))] = path
        if not files:
            raise EventDataError(self.batch_dir, "no batch_N.parquet files")
        return dict(sorted(files.items()))

    @property
    def batch_ids(self) -> list[int]:
        return list(self._files)

    def batch_path(self, batch_id: int) -> Path:
        try:
            return self._files[batch_id]
        except KeyError:
            raise EventDataError(
                self.batch_dir / f"batch_{batch_id}.parquet", "listed in meta but missing"
            ) from None

    def scan_meta(self) -> pl.LazyFrame:
        """Validated lazy meta; truth columns are present only when the file has them."""
        if not self.meta_path.is_file():
            raise EventDataError(self.meta_path, "meta file not found")
        scan = pl.scan_parquet(self.meta_path)
        schema = dict(scan.collect_schema())
        expected = dict(META_SCHEMA)
        if not any(c in schema for c in TRUTH_COLUMNS):
            del expected["azimuth"], expected["zenith"]
        _check_schema(self.meta_path, schema, expected)
        return scan.with_columns([pl.col(n).cast(t) for n, t in expected.items()])

    def count_events(self) -> int | None:
        """Number of events per the meta file (None without one): cheap, reads one column."""
        if not self.meta_path.is_file():
            return None
        return int(self.scan_meta().select(pl.len()).collect().item())

    def has_truth(self) -> bool:
        return self.meta_path.is_file() and "azimuth" in self.scan_meta().collect_schema()

    def meta_for_batch(self, batch_id: int) -> pl.DataFrame:
        if self.meta_path.is_file():
            return self.scan_meta().filter(pl.col("batch_id") == batch_id).collect()
        return _derive_meta(self.batch_path(batch_id), batch_id)

    def iter_batches(
        self, events_per_chunk: int = 4096, max_events: int | None = None
    ) -> Iterator[EventBatch]:
        """Events in file order, `events_per_chunk` at a time, each chunk validated."""
        remaining = max_events
        for batch_id in self.batch_ids:
            for chunk in self.iter_file(batch_id, events_per_chunk, max_events=remaining):
                yield chunk
                if remaining is not None:
                    remaining -= chunk.n_events
            if remaining is not None and remaining <= 0:
                return

    def iter_file(
        self,
        batch_id: int,
        events_per_chunk: int = 4096,
        skip: int = 0,
        max_events: int | None = None,
    ) -> Iterator[EventBatch]:
        """One batch file's events from the `skip`-th on, for resuming part-way through a file."""
        if events_per_chunk < 1:
            raise ValueError("events_per_chunk must be at least 1")
        meta = self.meta_for_batch(batch_id).slice(skip)
        if max_events is not None:
            meta = meta.head(max(0, max_events))
        path = self.batch_path(batch_id)
        scan = scan_pulses(path)
        for start in range(0, meta.height, events_per_chunk):
            yield self._read_chunk(path, scan, meta.slice(start, events_per_chunk))

    def _read_chunk(self, path: Path, scan: pl.LazyFrame, meta: pl.DataFrame) -> EventBatch:
        first = meta["first_pulse_index"].to_numpy().astype(np.int64)
        last = meta["last_pulse_index"].to_numpy().astype(np.int64)
        event_id = meta["event_id"].to_numpy().astype(np.int64)
        counts = last - first + 1
        if (counts < 1).any():
            bad = event_id[counts < 1][:5].tolist()
            raise EventDataError(path, f"empty event(s): event_id {bad} have no pulses")
        if (first[1:] != last[:-1] + 1).any():
            raise EventDataError(
                self.meta_path, f"pulse ranges of batch {path.name} are not contiguous"
            )
        lo, n_rows = int(first[0]), int(last[-1] - first[0] + 1)
        pulses = scan.slice(lo, n_rows).collect()
        if pulses.height != n_rows:
            raise EventDataError(
                path,
                f"expected rows {lo}..{lo + n_rows - 1}, "
                f"but the file ends at row {lo + pulses.height - 1}",
            )
        if pulses.null_count().sum_horizontal().item() > 0:
            raise EventDataError(path, f"null values in rows {lo}..{lo + n_rows - 1}")
        pulse_event = pulses["event_id"].to_numpy()
        expected_event = np.repeat(event_id, counts)
        if not np.array_equal(pulse_event, expected_event):
            where = int(np.argmax(pulse_event != expected_event))
            raise EventDataError(
                path,
                f"row {lo + where} belongs to event_id {int(pulse_event[where])} but meta says "
                f"{int(expected_event[where])}",
            )
        sensor_id = pulses["sensor_id"].to_numpy()
        unknown = (sensor_id < 0) | (sensor_id >= self.geometry.n_sensors)
        if unknown.any():
            raise EventDataError(
                path,
                f"unknown sensor_id(s) {np.unique(sensor_id[unknown])[:5].tolist()} "
                f"(geometry has {self.geometry.n_sensors} sensors)",
            )
        truth = "azimuth" in meta.columns
        extra_names = [c for c in meta.columns if c not in META_SCHEMA]
        return EventBatch(
            geometry=self.geometry,
            event_id=event_id,
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            sensor_id=sensor_id.astype(np.int16),
            time=pulses["time"].to_numpy().astype(np.int64),
            charge=pulses["charge"].to_numpy().astype(np.float64),
            auxiliary=pulses["auxiliary"].to_numpy().astype(bool),
            azimuth=meta["azimuth"].to_numpy().astype(np.float64) if truth else None,
            zenith=meta["zenith"].to_numpy().astype(np.float64) if truth else None,
            extra={name: meta[name].to_numpy() for name in extra_names},
        )
