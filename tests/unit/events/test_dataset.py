from pathlib import Path

import numpy as np
import polars as pl
import pytest

from icecube_stream.events.batch import EventBatch, concat_batches, take_events
from icecube_stream.events.dataset import EventDataset
from icecube_stream.events.geometry import Geometry, write_geometry_csv
from icecube_stream.events.layout import META_SCHEMA, PULSE_SCHEMA, EventDataError

pytestmark = pytest.mark.unit


def _assert_same_events(a: EventBatch, b: EventBatch) -> None:
    np.testing.assert_array_equal(a.event_id, b.event_id)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.sensor_id, b.sensor_id)
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(a.charge, b.charge)
    np.testing.assert_array_equal(a.auxiliary, b.auxiliary)


def test_round_trip_preserves_every_pulse_and_the_truth(
    simulated: EventBatch, dataset_dir: Path
) -> None:
    dataset = EventDataset(dataset_dir)
    assert dataset.batch_ids == [1, 2, 3, 4]
    read = concat_batches(list(dataset.iter_batches(events_per_chunk=333)))
    _assert_same_events(read, simulated)
    np.testing.assert_array_equal(read.azimuth, simulated.azimuth)
    np.testing.assert_array_equal(read.zenith, simulated.zenith)
    np.testing.assert_array_equal(read.extra["energy"], simulated.extra["energy"])
    np.testing.assert_array_equal(read.extra["event_type"], simulated.extra["event_type"])
    np.testing.assert_array_equal(read.geometry.positions, simulated.geometry.positions)


def test_files_use_the_original_kaggle_names_and_dtypes(dataset_dir: Path) -> None:
    batch_schema = pl.read_parquet_schema(dataset_dir / "train" / "batch_1.parquet")
    assert dict(batch_schema) == PULSE_SCHEMA
    meta_schema = pl.read_parquet_schema(dataset_dir / "train_meta.parquet")
    assert {k: meta_schema[k] for k in META_SCHEMA} == META_SCHEMA
    assert list(meta_schema)[:6] == list(META_SCHEMA)
    assert {"event_type", "energy"} <= set(meta_schema)
    meta = pl.read_parquet(dataset_dir / "train_meta.parquet")
    batch = pl.read_parquet(dataset_dir / "train" / "batch_2.parquet")
    rows = meta.filter(pl.col("batch_id") == 2)
    assert rows["first_pulse_index"][0] == 0
    assert rows["last_pulse_index"][-1] == batch.height - 1
    header = (dataset_dir / "sensor_geometry.csv").read_text().splitlines()[0]
    assert header == "sensor_id,x,y,z"


def test_max_events_and_chunking(dataset_dir: Path, simulated: EventBatch) -> None:
    chunks = list(EventDataset(dataset_dir).iter_batches(events_per_chunk=150, max_events=500))
    assert sum(c.n_events for c in chunks) == 500
    assert max(c.n_events for c in chunks) <= 150
    _assert_same_events(concat_batches(chunks), take_events(simulated, 0, 500))


@pytest.mark.parametrize("index_name", ["event_id", None])
def test_reads_event_id_stored_as_pandas_index(
    tmp_path: Path, simulated: EventBatch, index_name: str | None
) -> None:
    part = take_events(simulated, 0, 50)
    root = tmp_path / "kaggle"
    (root / "test").mkdir(parents=True)
    write_geometry_csv(part.geometry, root / "sensor_geometry.csv")
    frame = part.pulses_frame().to_pandas().set_index("event_id")
    frame.index.name = index_name
    frame.to_parquet(root / "test" / "batch_661.parquet")
    # A test split: meta without truth columns.
    pl.DataFrame(
        {
            "batch_id": np.full(50, 661),
            "event_id": part.event_id,
            "first_pulse_index": part.offsets[:-1],
            "last_pulse_index": part.offsets[1:] - 1,
        }
    ).write_parquet(root / "test_meta.parquet")
    dataset = EventDataset(root, split="test")
    read = concat_batches(list(dataset.iter_batches()))
    _assert_same_events(read, part)
    assert read.azimuth is None
    # Without any meta file the event boundaries are recovered from the pulses.
    (root / "test_meta.parquet").unlink()
    _assert_same_events(concat_batches(list(EventDataset(root, "test").iter_batches())), part)


def _one_batch_dataset(root: Path, pulses: pl.DataFrame, meta: pl.DataFrame) -> Path:
    (root / "train").mkdir(parents=True)
    pulses.write_parquet(root / "train" / "batch_1.parquet")
    meta.write_parquet(root / "train_meta.parquet")
    return root / "train" / "batch_1.parquet"


def _good(geometry: Geometry) -> tuple[pl.DataFrame, pl.DataFrame]:
    pulses = pl.DataFrame(
        {
            "event_id": [7, 7, 7, 9, 9],
            "sensor_id": [1, 2, 3, 4, 5],
            "time": [6000, 6100, 6200, 6000, 7000],
            "charge": [1.0, 0.5, 1.2, 0.9, 1.1],
            "auxiliary": [False, True, False, False, True],
        },
        schema=PULSE_SCHEMA,
    )
    meta = pl.DataFrame(
        {
            "batch_id": [1, 1],
            "event_id": [7, 9],
            "first_pulse_index": [0, 3],
            "last_pulse_index": [2, 4],
            "azimuth": [1.0, 2.0],
            "zenith": [0.5, 1.5],
        },
        schema=META_SCHEMA,
    )
    return pulses, meta


def test_hand_written_dataset_reads_back(tmp_path: Path, geometry: Geometry) -> None:
    pulses, meta = _good(geometry)
    _one_batch_dataset(tmp_path, pulses, meta)
    batch = next(EventDataset(tmp_path).iter_batches())
    np.testing.assert_array_equal(batch.event_id, [7, 9])
    np.testing.assert_array_equal(batch.pulse_counts, [3, 2])
    np.testing.assert_array_equal(batch.positions, geometry.positions[[1, 2, 3, 4, 5]])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p, m: (p.drop("charge"), m), r"batch_1\.parquet: missing column.*'charge'"),
        (
            lambda p, m: (p.with_columns(pl.col("time").cast(pl.Float64)), m),
            r"batch_1\.parquet: wrong dtype: 'time' is Float64",
        ),
        (
            lambda p, m: (p.with_columns(pl.col("auxiliary").cast(pl.Utf8)), m),
            r"batch_1\.parquet: wrong dtype: 'auxiliary' is String",
        ),
        (
            lambda p, m: (p.with_columns(pl.Series("sensor_id", [1, 2, 9999, 4, 5], pl.Int16)), m),
            r"batch_1\.parquet: unknown sensor_id\(s\) \[9999\]",
        ),
        (
            lambda p, m: (p, m.with_columns(pl.Series("last_pulse_index", [2, 2]))),
            r"batch_1\.parquet: empty event\(s\): event_id \[9\]",
        ),
        (
            lambda p, m: (p, m.with_columns(pl.Series("event_id", [7, 8]))),
            r"batch_1\.parquet: row 3 belongs to event_id 9 but meta says 8",
        ),
        (
            lambda p, m: (p, m.drop("first_pulse_index")),
            r"train_meta\.parquet: missing column.*'first_pulse_index'",
        ),
        (
            lambda p, m: (p, m.with_columns(pl.Series("last_pulse_index", [2, 9]))),
            r"batch_1\.parquet: expected rows 0\.\.9, but the file ends at row 4",
        ),
    ],
    ids=[
        "missing-column",
        "float-time",
        "string-aux",
        "unknown-sensor",
        "empty-event",
        "meta-mismatch",
        "meta-missing-column",
        "truncated-file",
    ],
)
def test_bad_input_names_the_file_and_the_problem(
    tmp_path: Path, geometry: Geometry, mutate, message: str
) -> None:
    pulses, meta = mutate(*_good(geometry))
    _one_batch_dataset(tmp_path, pulses, meta)
    with pytest.raises(EventDataError, match=message):
        list(EventDataset(tmp_path).iter_batches())


def test_missing_directories_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EventDataError, match="data directory not found"):
        EventDataset(tmp_path / "nope")
    with pytest.raises(EventDataError, match="no 'train' batch directory"):
        EventDataset(tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(EventDataError, match=r"no batch_N\.parquet files"):
        EventDataset(tmp_path)
    (tmp_path / "train" / "batch_1.parquet").write_text("not parquet")
    with pytest.raises(EventDataError, match=r"batch_1\.parquet: not a readable parquet file"):
        list(EventDataset(tmp_path).iter_batches())
