import hashlib
from pathlib import Path

import numpy as np
import pytest

from icecube_stream.events.geometry import (
    ICECUBE_GEOMETRY_ID,
    ICECUBE_GEOMETRY_SHA256,
    Geometry,
    GeometryMismatchError,
    from_positions,
    icecube_geometry,
    icecube_geometry_path,
    load_geometry,
    read_geometry_csv,
    require_same_geometry,
    write_geometry_csv,
)
from icecube_stream.events.layout import EventDataError

pytestmark = pytest.mark.unit

SHARED_GEOMETRY = Path(__file__).resolve().parents[4] / "shared" / "data" / "sensor_geometry.csv"


def _nearest_neighbour_spacing(xy: np.ndarray) -> float:
    d = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


def test_the_shipped_file_is_the_published_one() -> None:
    digest = hashlib.sha256(icecube_geometry_path().read_bytes()).hexdigest()
    assert digest == ICECUBE_GEOMETRY_SHA256
    assert icecube_geometry().identity == ICECUBE_GEOMETRY_ID
    assert load_geometry(None) is icecube_geometry()


@pytest.mark.skipif(not SHARED_GEOMETRY.is_file(), reason="../shared/data not beside the checkout")
def test_the_shipped_file_equals_the_shared_reference_copy() -> None:
    assert SHARED_GEOMETRY.read_bytes() == icecube_geometry_path().read_bytes()


def test_icecube_layout(geometry: Geometry) -> None:
    assert geometry.n_sensors == 5160
    assert geometry.n_strings == 86
    assert geometry.high_qe.sum() == 8 * 60
    assert _nearest_neighbour_spacing(geometry.string_positions()[:78]) == pytest.approx(
        125.0, rel=0.05
    )
    z = geometry.positions[:, 2]
    assert -520 < z.min() < -500 and 520 < z.max() < 530
    # Sensors are numbered string by string, top down.
    for s in (0, 40, 85):
        assert (np.diff(geometry.positions[geometry.string == s, 2]) < 0).all()


def test_identity_ignores_formatting_and_sees_a_centimetre(tmp_path: Path) -> None:
    ice = icecube_geometry()
    path = tmp_path / "reformatted.csv"
    lines = ["sensor_id,x,y,z"] + [
        f"{i},{x:.6f},{y:.4f},{z}" for i, (x, y, z) in enumerate(ice.positions.tolist())
    ]
    path.write_text("\n".join(lines) + "\n")
    assert load_geometry(path).identity == ice.identity
    nudged = ice.positions.copy()
    nudged[17, 2] += 0.004  # below the rounding
    assert from_positions(nudged).identity == ice.identity
    nudged[17, 2] += 0.02
    assert from_positions(nudged).identity != ice.identity


def test_a_mismatch_names_both_identities_the_worst_sensor_and_the_fix() -> None:
    ice = icecube_geometry()
    moved = ice.positions.copy()
    moved[1234] += [3.0, 4.0, 0.0]
    other = from_positions(moved)
    with pytest.raises(GeometryMismatchError) as raised:
        require_same_geometry(ice, other, what="the data set", fix="Do X.")
    message = str(raised.value)
    assert f"geometry {other.identity}, not {ICECUBE_GEOMETRY_ID} (IceCube)" in message
    assert "1 of 5160 sensors moved" in message
    assert "largest 5.00 m at sensor 1234" in message and message.endswith("Do X.")
    require_same_geometry(ice, from_positions(ice.positions.copy()), what="x", fix="y")


def test_geometry_csv_round_trip_and_errors(tmp_path: Path) -> None:
    g = icecube_geometry()
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
