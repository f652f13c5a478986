"""`icecube-stream predict`: Kaggle's test split (no truth, event_id as the pandas index of the
batch files) to a submission CSV or a Parquet file, with a progress bar and a summary."""

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from icecube_stream.cli import app
from icecube_stream.cli.progress import EventRateColumn, event_progress
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.events.geometry import write_geometry_csv
from icecube_stream.model.inference import DirectionModel
from icecube_stream.model.predict import COLUMNS

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def kaggle_test(tmp_path_factory: pytest.TempPathFactory, events: EventBatch) -> Path:
    """A Kaggle-layout test split as the competition ships it: batch files written by pandas
    with event_id as their index, and a meta file without azimuth / zenith."""
    root = tmp_path_factory.mktemp("kaggle")
    (root / "test").mkdir()
    write_geometry_csv(events.geometry, root / "sensor_geometry.csv")
    metas = []
    for batch_id, (lo, hi) in ((661, (0, 70)), (662, (70, 150))):
        part = take_events(events, lo, hi)
        pulses = part.pulses_frame().to_pandas().set_index("event_id")
        pulses.to_parquet(root / "test" / f"batch_{batch_id}.parquet")
        metas.append(
            pl.DataFrame(
                {
                    "batch_id": np.full(part.n_events, batch_id),
                    "event_id": part.event_id,
                    "first_pulse_index": part.offsets[:-1],
                    "last_pulse_index": part.offsets[1:] - 1,
                }
            )
        )
    pl.concat(metas).write_parquet(root / "test_meta.parquet")
    return root


def _predict(data: Path, model: Path, out: Path, *extra: str) -> tuple[int, str]:
    args = ["predict", "--data", str(data), "--split", "test", "--model", str(model)]
    result = CliRunner().invoke(app, [*args, "--out", str(out), *extra])
    return result.exit_code, " ".join(result.stderr.split())


def test_kaggle_test_split_to_a_submission_csv(
    kaggle_test: Path, tiny_model_dir: Path, events: EventBatch, tmp_path: Path
) -> None:
    out = tmp_path / "submission.csv"
    code, stderr = _predict(kaggle_test, tiny_model_dir, out)
    assert code == 0, stderr
    assert out.read_text().splitlines()[0] == "event_id,azimuth,zenith"
    table = pl.read_csv(out)
    part = take_events(events, 0, 150)
    np.testing.assert_array_equal(table["event_id"].to_numpy(), part.event_id)
    expected = DirectionModel.load(tiny_model_dir).predict(
        part.sensor_id, part.time, part.charge, part.auxiliary, part.offsets
    )
    # Radians, in Kaggle's ranges, the model's own numbers.
    np.testing.assert_allclose(table["azimuth"].to_numpy(), expected.azimuth, atol=1e-9)
    np.testing.assert_allclose(table["zenith"].to_numpy(), expected.zenith, atol=1e-9)
    assert ((table["azimuth"] >= 0) & (table["azimuth"] < 2 * np.pi)).all()
    assert ((table["zenith"] >= 0) & (table["zenith"] <= np.pi)).all()
    assert "150 events in" in stderr and "events/s" in stderr and "Kaggle submission" in stderr


def test_parquet_keeps_every_column_plus_sigma(
    kaggle_test: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "deeper" / "predictions.parquet"
    code, stderr = _predict(kaggle_test, tiny_model_dir, out, "--max-events", "100")
    assert code == 0, stderr
    table = pl.read_parquet(out)
    assert tuple(table.columns) == COLUMNS
    assert table.columns[:4] == ["event_id", "azimuth", "zenith", "sigma"]
    assert table.height == 100
    np.testing.assert_array_equal(table["sigma"], table["angular_uncertainty"])
    np.testing.assert_allclose(table["sigma"], 1 / np.sqrt(table["kappa"]))


def test_an_unknown_output_format_is_refused_before_any_work(
    kaggle_test: Path, tmp_path: Path
) -> None:
    code, stderr = _predict(kaggle_test, tmp_path / "no-model", tmp_path / "out.json")
    assert code == 1
    assert "must end in .parquet or .csv" in stderr  # not a complaint about the model


def test_the_progress_bar_shows_events_per_second() -> None:
    progress = event_progress(Console(file=io.StringIO()))
    assert any(isinstance(column, EventRateColumn) for column in progress.columns)
    now = [0.0]
    timed = Progress(EventRateColumn(), get_time=lambda: now[0])
    task = timed.add_task("x", total=1000)
    assert str(EventRateColumn().render(timed.tasks[0])) == "- events/s"
    timed.advance(task, 100)
    now[0] = 2.0
    timed.advance(task, 2500)
    assert str(EventRateColumn().render(timed.tasks[0])) == "1,250 events/s"
