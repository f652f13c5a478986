"""`simulate` never writes over a data set silently: a non-empty --out needs --force, which
deletes the old batch files and meta so none are read together with the new ones."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from icecube_stream.cli import app
from icecube_stream.events.dataset import EventDataset, clear_split

pytestmark = pytest.mark.unit


def _simulate(out: Path, events: int, *extra: str) -> tuple[int, str]:
    args = ["simulate", "--events", str(events), "--out", str(out), "--batch-size", "100"]
    result = CliRunner().invoke(app, [*args, *extra])
    return result.exit_code, " ".join(result.stderr.split())  # rich wraps long lines


def _batch_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "train").iterdir())


def test_a_non_empty_out_is_refused_and_force_replaces_the_data_set(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    assert _simulate(out, 300, "--seed", "1")[0] == 0
    assert _batch_files(out) == ["batch_1.parquet", "batch_2.parquet", "batch_3.parquet"]
    (out / "notes.txt").write_text("mine")
    meta_before = (out / "train_meta.parquet").read_bytes()

    code, stderr = _simulate(out, 100, "--seed", "2")
    assert code == 1
    assert "not empty" in stderr and "--force" in stderr
    assert _batch_files(out) == ["batch_1.parquet", "batch_2.parquet", "batch_3.parquet"]
    assert (out / "train_meta.parquet").read_bytes() == meta_before

    code, stderr = _simulate(out, 100, "--seed", "2", "--force")
    assert code == 0, stderr
    assert "deleted 4 files" in stderr
    assert _batch_files(out) == ["batch_1.parquet"]  # no stale batch_2/3 left to be read
    assert (out / "notes.txt").read_text() == "mine"
    dataset = EventDataset(out)
    assert dataset.count_events() == 100
    assert sum(b.n_events for b in dataset.iter_batches()) == 100


def test_an_empty_or_missing_out_needs_no_force_and_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert _simulate(tmp_path / "empty", 50)[0] == 0
    assert _simulate(tmp_path / "new" / "deeper", 50)[0] == 0
    (tmp_path / "file").write_text("x")
    code, stderr = _simulate(tmp_path / "file", 50, "--force")
    assert code == 1 and "not a directory" in stderr


def test_clear_split_deletes_only_that_splits_meta_and_batch_files(tmp_path: Path) -> None:
    for name in ("train/batch_1.parquet", "train/batch_12.parquet", "train/other.parquet"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    for name in ("train_meta.parquet", "test_meta.parquet", "sensor_geometry.csv"):
        (tmp_path / name).write_text("")
    removed = clear_split(tmp_path, "train")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == [
        "train/batch_1.parquet",
        "train/batch_12.parquet",
        "train_meta.parquet",
    ]
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["sensor_geometry.csv", "test_meta.parquet", "train/other.parquet"]
