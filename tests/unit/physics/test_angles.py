import numpy as np
import pytest

from icecube_stream.physics.angles import (
    angles_to_vector,
    angular_distance,
    angular_distance_angles,
    mean_angular_error,
    vector_to_angles,
)

pytestmark = pytest.mark.unit


def _random_directions(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(0, 2 * np.pi, n), np.arccos(rng.uniform(-1, 1, n))


def test_round_trip_angles_vector_angles() -> None:
    az, zen = _random_directions(np.random.default_rng(1), 1000)
    az2, zen2 = vector_to_angles(angles_to_vector(az, zen))
    np.testing.assert_allclose(zen2, zen, atol=1e-12)
    np.testing.assert_allclose(az2, az, atol=1e-9)
    assert ((az2 >= 0) & (az2 < 2 * np.pi)).all()
    assert ((zen2 >= 0) & (zen2 <= np.pi)).all()


def test_convention_points_to_where_the_particle_came_from() -> None:
    # zenith 0: came from straight above, vector +z; azimuth 0 at zenith pi/2: +x.
    np.testing.assert_allclose(angles_to_vector(0.0, 0.0), [0, 0, 1], atol=1e-15)
    np.testing.assert_allclose(angles_to_vector(0.0, np.pi / 2), [1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(angles_to_vector(np.pi / 2, np.pi / 2), [0, 1, 0], atol=1e-15)


def test_distance_zero_for_equal_pi_for_opposite_and_symmetric() -> None:
    rng = np.random.default_rng(2)
    u = angles_to_vector(*_random_directions(rng, 500))
    v = angles_to_vector(*_random_directions(rng, 500))
    np.testing.assert_array_equal(angular_distance(u, u), 0.0)
    np.testing.assert_allclose(angular_distance(u, -u), np.pi, atol=1e-15)
    np.testing.assert_array_equal(angular_distance(u, v), angular_distance(v, u))
    w = angles_to_vector(*_random_directions(rng, 500))
    assert (angular_distance(u, w) <= angular_distance(u, v) + angular_distance(v, w) + 1e-12).all()


def test_distance_is_accurate_for_tiny_and_near_pi_angles() -> None:
    # arccos(u.v) returns 0 (or ~1.5e-8) here; the metric must resolve 1e-9 rad.
    for eps in (1e-9, 1e-6, 1e-3):
        u = np.array([1.0, 0.0, 0.0])
        v = np.array([np.cos(eps), np.sin(eps), 0.0])
        assert angular_distance(u, v) == pytest.approx(eps, rel=1e-6)
        assert angular_distance(u, -v) == pytest.approx(np.pi - eps, rel=1e-12)


def test_distance_does_not_need_unit_vectors() -> None:
    u = np.array([[3.0, 0.0, 0.0]])
    v = np.array([[0.0, 0.5, 0.0]])
    assert angular_distance(u, v)[0] == pytest.approx(np.pi / 2)


def test_kaggle_metric_random_guess_is_half_pi() -> None:
    rng = np.random.default_rng(3)
    az1, zen1 = _random_directions(rng, 40_000)
    az2, zen2 = _random_directions(rng, 40_000)
    assert mean_angular_error(az1, zen1, az2, zen2) == pytest.approx(np.pi / 2, abs=0.02)
    assert mean_angular_error(az1, zen1, az1, zen1) == 0.0


def test_metric_matches_the_kaggle_reference_formula() -> None:
    rng = np.random.default_rng(4)
    az1, zen1 = _random_directions(rng, 1000)
    az2, zen2 = _random_directions(rng, 1000)
    # The competition's own formula, written out independently.
    dot = np.sin(zen1) * np.sin(zen2) * np.cos(az1 - az2) + np.cos(zen1) * np.cos(zen2)
    reference = np.arccos(np.clip(dot, -1, 1))
    np.testing.assert_allclose(angular_distance_angles(az1, zen1, az2, zen2), reference, atol=1e-7)


def test_empty_metric_is_an_error() -> None:
    with pytest.raises(ValueError, match="zero events"):
        mean_angular_error([], [], [], [])
