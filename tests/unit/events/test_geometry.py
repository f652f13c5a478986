from pathlib import Path

import numpy as np
import pytest

from icecube_stream.events.format import EventDataError, read_geometry_csv
from icecube_stream.events.geometry import Geometry, generate_geometry, load_geometry

pytestmark = pytest.mark.unit

REAL_GEOMETRY = Path(__file__).resolve().parents[4] / "shared" / "data" / "sensor_geometry.csv"


def _nearest_neighbour_spacing(xy: np.ndarray) -> float:
    d = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


def test_generated_layout_follows_icecube_design(geometry: Geometry) -> None:
    assert geometry.n_sensors == 5160
    assert geometry.n_strings == 86
    assert (np.bincount(geometry.string) == 60).all()
    assert geometry.high_qe.sum() == 8 * 60
    standard = geometry.string_positions()[:78]
    assert _nearest_neighbour_spacing(standard) == pytest.approx(125.0, rel=0.02)
    z = geometry.positions[:, 2]
    assert -520 < z.min() < -480 and 480 < z.max() < 520
    top_string = geometry.positions[geometry.string == 0, 2]
    np.testing.assert_allclose(-np.diff(top_string), 17.0, atol=1e-6)
    deep = geometry.positions[(geometry.string == 80) & (geometry.positions[:, 2] < -150), 2]
    np.testing.assert_allclose(-np.diff(deep), 7.0, atol=0.02)


def test_sensor_ids_are_numbered_string_major_top_down(geometry: Geometry) -> None:
    np.testing.assert_array_equal(geometry.string, np.arange(5160) // 60)
    for s in (0, 40, 85):
        assert (np.diff(geometry.positions[geometry.string == s, 2]) < 0).all()


@pytest.mark.skipif(not REAL_GEOMETRY.is_file(), reason="real sensor_geometry.csv not available")
def test_generated_geometry_matches_the_real_detector(geometry: Geometry) -> None:
    real = load_geometry(REAL_GEOMETRY)
    assert real.n_sensors == geometry.n_sensors
    assert real.n_strings == geometry.n_strings
    for axis in range(3):
        lo, hi = real.positions[:, axis].min(), real.positions[:, axis].max()
        extent = hi - lo
        assert geometry.positions[:, axis].min() == pytest.approx(lo, abs=0.04 * extent)
        assert geometry.positions[:, axis].max() == pytest.approx(hi, abs=0.04 * extent)
    ours = _nearest_neighbour_spacing(geometry.string_positions()[:78])
    theirs = _nearest_neighbour_spacing(real.string_positions()[:78])
    assert ours == pytest.approx(theirs, rel=0.03)
    # DeepCore sits in the middle of the array in both.
    assert (
        np.linalg.norm(
            geometry.string_positions()[78:].mean(0) - real.string_positions()[78:].mean(0)
        )
        < 40.0
    )


def test_geometry_csv_round_trip_and_errors(tmp_path: Path) -> None:
    from icecube_stream.events.format import write_geometry_csv

    g = generate_geometry()
    path = tmp_path / "sensor_geometry.csv"
    write_geometry_csv(g, path)
    np.testing.assert_array_equal(read_geometry_csv(path), g.positions)
    bad = tmp_path / "bad.csv"
    bad.write_text("sensor_id,x,y\n0,1,2\n")
    with pytest.raises(EventDataError, match=r"bad\.csv.*missing column.*'z'"):
        read_geometry_csv(bad)
    gap = tmp_path / "gap.csv"
    gap.write_text("sensor_id,x,y,z\n0,1,2,3\n2,1,2,3\n")
    with pytest.raises(EventDataError, match=r"gap\.csv.*0\.\.n-1"):
        read_geometry_csv(gap)
