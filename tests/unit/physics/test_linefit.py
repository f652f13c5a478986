import numpy as np
import pytest

from icecube_stream.physics.angles import angles_to_vector, angular_distance
from icecube_stream.physics.linefit import linefit, robust_linefit, robust_weights

pytestmark = pytest.mark.unit


def _plane_wave_events(rng: np.random.Generator, sizes: list[int]) -> tuple:
    positions, times, sources = [], [], []
    for n in sizes:
        source = rng.normal(size=3)
        source /= np.linalg.norm(source)
        t = np.sort(rng.uniform(9000, 13000, n))
        r0 = rng.uniform(-400, 400, 3)
        # Particle moves along -source at 0.3 m/ns; pulses sit exactly on the moving plane.
        positions.append(r0 + np.outer(t - t[0], -0.3 * source) + rng.normal(0, 1e-9, (n, 3)))
        times.append(t)
        sources.append(source)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return np.vstack(positions), np.concatenate(times), offsets, np.array(sources)


def test_recovers_exact_plane_waves_for_many_events_at_once() -> None:
    rng = np.random.default_rng(5)
    pos, t, offsets, sources = _plane_wave_events(rng, [3, 10, 57, 200, 4])
    fit = linefit(pos, t, offsets)
    assert fit.valid.all()
    errors = angular_distance(angles_to_vector(fit.azimuth, fit.zenith), sources)
    assert errors.max() < 1e-6
    np.testing.assert_allclose(fit.speed, 0.3, rtol=1e-6)


def test_matches_a_per_event_least_squares_fit() -> None:
    rng = np.random.default_rng(6)
    sizes = [8, 30, 120]
    pos = rng.uniform(-500, 500, (sum(sizes), 3))
    t = rng.uniform(6000, 20000, sum(sizes))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    fit = linefit(pos, t, offsets)
    for k in range(len(sizes)):
        sl = slice(offsets[k], offsets[k + 1])
        design = np.column_stack([np.ones(sizes[k]), t[sl]])
        coef, *_ = np.linalg.lstsq(design, pos[sl], rcond=None)
        expected = -coef[1] / np.linalg.norm(coef[1])
        got = angles_to_vector(fit.azimuth[k], fit.zenith[k])
        assert angular_distance(got, expected) < 1e-9


def test_degenerate_events_are_flagged_not_nan() -> None:
    pos = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    t = np.array([100.0, 200.0, 200.0])
    offsets = np.array([0, 1, 3])  # one pulse; two pulses at the same time
    fit = linefit(pos, t, offsets)
    assert not fit.valid.any()
    assert np.isfinite(fit.azimuth).all() and np.isfinite(fit.zenith).all()


def test_robust_weights_drop_auxiliary_only_when_enough_clean_pulses_remain() -> None:
    aux = np.array([True, False, False, True] + [False] * 6 + [True] * 3)
    offsets = np.array([0, 4, 13])
    w = robust_weights(aux, offsets, min_clean=6)
    np.testing.assert_array_equal(w[:4], 1.0)  # only 2 clean pulses: keep all
    np.testing.assert_array_equal(w[4:], (~aux[4:]).astype(float))


def test_robust_fit_ignores_auxiliary_noise() -> None:
    rng = np.random.default_rng(7)
    pos, t, offsets, sources = _plane_wave_events(rng, [40] * 20)
    n_noise = 40
    new_pos, new_t, new_aux, new_offsets = [], [], [], [0]
    for k in range(20):
        sl = slice(offsets[k], offsets[k + 1])
        new_pos += [pos[sl], rng.uniform(-500, 500, (n_noise, 3))]
        new_t += [t[sl], rng.uniform(6000, 20000, n_noise)]
        new_aux += [np.zeros(40, bool), np.ones(n_noise, bool)]
        new_offsets.append(new_offsets[-1] + 40 + n_noise)
    args = (np.vstack(new_pos), np.concatenate(new_t), np.array(new_offsets))
    aux = np.concatenate(new_aux)
    plain = linefit(*args)
    robust = robust_linefit(*args, aux)
    err_plain = angular_distance(angles_to_vector(plain.azimuth, plain.zenith), sources)
    err_robust = angular_distance(angles_to_vector(robust.azimuth, robust.zenith), sources)
    assert err_robust.max() < 1e-6
    assert np.median(err_plain) > 0.1


def test_rejects_inconsistent_inputs() -> None:
    with pytest.raises(ValueError, match="offsets"):
        linefit(np.zeros((3, 3)), np.zeros(3), np.array([0, 2]))
    with pytest.raises(ValueError, match="positions"):
        linefit(np.zeros((3, 2)), np.zeros(3), np.array([0, 3]))
