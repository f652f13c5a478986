import numpy as np

from icecube_stream.physics.segments import keep_rows, segment_min, segment_sum
from icecube_stream.physics.vertex import early_vertex


def _cube(centre: np.ndarray, spacing: float = 40.0) -> np.ndarray:
    axis = np.arange(-3, 4) * spacing
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid + centre


def _point_source(
    centre: np.ndarray, motion: np.ndarray, boost: float = 4.0
) -> tuple[np.ndarray, ...]:
    """Sensors around a flash at `centre`; light is brighter where it moves (like a cascade)."""
    pos = _cube(centre)
    offset = pos - centre
    distance = np.linalg.norm(offset, axis=1)
    cos = offset @ motion / np.maximum(distance, 1.0)
    charge = (1.0 + boost * (cos > 0.5)) * np.exp(-distance / 50.0) * 50.0 + 0.1
    time = 10_000.0 + 12.0 * distance
    return pos, time, charge


def test_vertex_of_an_isotropic_flash() -> None:
    centre = np.array([100.0, -50.0, 20.0])
    pos, time, charge = _point_source(centre, np.array([1.0, 0.0, 0.0]), boost=0.0)
    offsets = np.array([0, pos.shape[0]])
    fit = early_vertex(pos, time, charge, offsets, np.ones(pos.shape[0]))
    assert np.linalg.norm(fit.vertex[0] - centre) < 1.0
    assert fit.first_time[0] == time.min()
    assert fit.strength[0] < 0.05


def test_dipole_of_a_flash_points_back_to_the_source() -> None:
    centre = np.array([100.0, -50.0, 20.0])
    motion = np.array([1.0, 0.0, 0.0])
    pos, time, charge = _point_source(centre, motion)
    offsets = np.array([0, pos.shape[0]])
    fit = early_vertex(pos, time, charge, offsets, np.ones(pos.shape[0]))
    # Brighter light ahead pulls the vertex forward a little, less than a sensor spacing.
    assert np.linalg.norm(fit.vertex[0] - centre) < 20.0
    # The source lies opposite to the motion.
    assert fit.dipole[0] @ -motion > 0.95
    assert 0.0 < fit.strength[0] < 1.0


def test_events_do_not_mix_and_weights_select_pulses() -> None:
    a = _point_source(np.zeros(3), np.array([0.0, 0.0, 1.0]))
    b = _point_source(np.array([300.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    pos, time, charge = (np.concatenate([x, y]) for x, y in zip(a, b, strict=True))
    n = a[0].shape[0]
    offsets = np.array([0, n, 2 * n])
    fit = early_vertex(pos, time, charge, offsets, np.ones(2 * n))
    assert fit.dipole[0] @ np.array([0.0, 0.0, -1.0]) > 0.95
    assert fit.dipole[1] @ np.array([0.0, -1.0, 0.0]) > 0.95
    # A pulse with zero weight does not move the vertex however early and bright it is.
    weights = np.ones(2 * n)
    time[0], charge[0], weights[0] = 0.0, 1e6, 0.0
    moved = early_vertex(pos, time, charge, offsets, weights)
    assert np.allclose(moved.vertex[0], fit.vertex[0], atol=1.0)


def test_segment_reductions_give_identities_for_empty_segments() -> None:
    values = np.array([1.0, 2.0, 3.0])
    offsets = np.array([0, 2, 2, 3])
    assert segment_sum(values, offsets).tolist() == [3.0, 0.0, 3.0]
    assert segment_min(values, offsets).tolist() == [1.0, np.inf, 3.0]


def test_keep_rows_renumbers_events_and_keeps_empty_ones() -> None:
    offsets = np.array([0, 3, 3, 5])
    keep = np.array([True, False, True, False, False])
    rows, kept = keep_rows(offsets, keep)
    assert rows.tolist() == [0, 2]
    assert kept.tolist() == [0, 2, 2, 2]
