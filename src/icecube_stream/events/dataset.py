"""A Kaggle-layout data set on disk (see `layout.py`), read and written with polars.

Real data is ~84 GB, so reading is lazy and chunked: per batch file, only the meta rows of that
batch are collected, and pulses are read as row slices of a few thousand events at a time
(slice pushdown into the parquet scan). Every problem found is an `EventDataError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import polars as pl

from icecube_stream.events.batch import EventBatch, concat_batches, take_events
from icecube_stream.events.geometry import (
    Geometry,
    from_positions,
    icecube_geometry,
    read_geometry_csv,
    write_geometry_csv,
)
from icecube_stream.events.layout import (
    GEOMETRY_FILE,
    META_SCHEMA,
    PULSE_SCHEMA,
    TRUTH_COLUMNS,
    EventDataError,
    check_schema,
)

_BATCH_NAME = re.compile(r"^batch_(\d+)\.parquet$")


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


def clear_split(root: Path, split: str = "train") -> list[Path]:
    """Delete a split's meta and batch_N.parquet files, what a DatasetWriter writes, and return
    them. A new data set would overwrite the meta but not an old batch file numbered past its
    own last one, which readers would then mix in. Any other file stays."""
    stale = [root / f"{split}_meta.parquet"]
    if (root / split).is_dir():
        stale += sorted(p for p in (root / split).iterdir() if _BATCH_NAME.match(p.name))
    removed = [path for path in stale if path.is_file()]
    for path in removed:
        path.unlink()
    return removed


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
    check_schema(path, schema, PULSE_SCHEMA)
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
        check_schema(self.meta_path, schema, expected)
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
