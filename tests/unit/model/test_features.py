import numpy as np
import pytest

from icecube_stream.events.batch import EventBatch
from icecube_stream.events.geometry import Geometry
from icecube_stream.model.features import (
    EVENT_FEATURES,
    PULSE_FEATURES,
    FeatureConfig,
    FeatureError,
    build_features,
    features_from_batch,
)

pytestmark = pytest.mark.unit


def test_shapes_offsets_and_cap(events: EventBatch) -> None:
    cap = 32
    f = features_from_batch(events, FeatureConfig(max_pulses=cap))
    assert f.n_events == events.n_events
    assert f.events.shape == (events.n_events, len(EVENT_FEATURES))
    assert f.values.shape == (int(f.offsets[-1]), len(PULSE_FEATURES))
    np.testing.assert_array_equal(f.lengths, np.minimum(events.pulse_counts, cap))
    assert np.isfinite(f.values).all() and np.isfinite(f.events).all()
    assert (events.pulse_counts > cap).any(), "the fixture should contain events above the cap"


def test_padding_and_mask(events: EventBatch) -> None:
    f = features_from_batch(events, FeatureConfig(max_pulses=48))
    idx = np.array([5, 0, 17, 3])
    padded = f.pad(idx)
    width = int(f.lengths[idx].max())
    assert padded.pulses.shape == (4, width, len(PULSE_FEATURES))
    np.testing.assert_array_equal(padded.mask.sum(axis=1), f.lengths[idx])
    assert (padded.pulses[~padded.mask] == 0).all()
    for row, event in enumerate(idx):
        n = f.lengths[event]
        np.testing.assert_array_equal(
            padded.pulses[row, :n], f.values[f.offsets[event] : f.offsets[event + 1]]
        )
        assert padded.mask[row, :n].all()


def test_deterministic(events: EventBatch) -> None:
    a = features_from_batch(events)
    b = features_from_batch(events)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.events, b.events)


def test_kept_pulses_do_not_depend_on_row_order(geometry: Geometry) -> None:
    """Pulses of one event shuffled give the same features (kept pulses are time-sorted)."""
    rng = np.random.default_rng(0)
    n = 80
    sensor = rng.integers(0, geometry.n_sensors, n).astype(np.int16)
    time = np.arange(n) * 37 + 6000  # distinct times: no ties
    charge = rng.uniform(0.2, 5.0, n)
    aux = rng.random(n) < 0.5
    offsets = np.array([0, n])
    cfg = FeatureConfig(max_pulses=20)
    ref = build_features(sensor, time, charge, aux, offsets, geometry, cfg)
    perm = rng.permutation(n)
    shuffled = build_features(
        sensor[perm], time[perm], charge[perm], aux[perm], offsets, geometry, cfg
    )
    np.testing.assert_allclose(ref.values, shuffled.values, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ref.events, shuffled.events, rtol=1e-5, atol=1e-6)


def test_selection_keeps_clean_pulses_then_brightest(geometry: Geometry) -> None:
    # Event of 8 pulses: 5 bright auxiliary ones, 3 dim clean ones; keep 4.
    charge = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 0.3, 0.2, 0.1])
    aux = np.array([True] * 5 + [False] * 3)
    time = np.arange(8) * 100 + 6000
    sensor = np.arange(8, dtype=np.int16) * 60
    f = build_features(
        sensor, time, charge, aux, np.array([0, 8]), geometry, FeatureConfig(max_pulses=4)
    )
    kept_aux = f.values[:, PULSE_FEATURES.index("auxiliary")]
    kept_charge = np.expm1(f.values[:, PULSE_FEATURES.index("log_charge")])
    assert int((kept_aux == 0).sum()) == 3
    np.testing.assert_allclose(np.sort(kept_charge), [0.1, 0.2, 0.3, 9.0], rtol=1e-5)
    dt = f.values[:, PULSE_FEATURES.index("dt")]
    assert (np.diff(dt) > 0).all(), "kept pulses come in time order"


def _one_event(geometry: Geometry) -> dict[str, np.ndarray]:
    return {
        "sensor_id": np.array([1, 2, 3], dtype=np.int16),
        "time": np.array([6000.0, 6100.0, 6200.0]),
        "charge": np.array([1.0, 1.0, 1.0]),
        "auxiliary": np.array([False, False, True]),
        "offsets": np.array([0, 3]),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"offsets": np.array([0, 3, 3])}, "no pulses"),
        ({"time": np.array([6000.0, np.nan, 6200.0])}, "NaN"),
        ({"charge": np.array([1.0, 1.0, np.inf])}, "NaN/inf"),
        ({"sensor_id": np.array([1, 5160, 3], dtype=np.int16)}, "unknown sensor_id"),
        ({"sensor_id": np.array([-1, 2, 3], dtype=np.int16)}, "unknown sensor_id"),
        ({"charge": np.array([1.0, 1.0])}, "differ in length"),
    ],
)
def test_bad_input_is_a_clear_error(
    geometry: Geometry, change: dict[str, np.ndarray], message: str
) -> None:
    arrays = _one_event(geometry) | change
    with pytest.raises(FeatureError, match=message):
        build_features(**arrays, geometry=geometry)


def test_good_event_passes(geometry: Geometry) -> None:
    assert build_features(**_one_event(geometry), geometry=geometry).n_events == 1


@pytest.mark.parametrize(
    ("sensor_id", "time", "charge", "auxiliary"),
    [
        ([5], [6000], [1.0], [False]),  # one pulse: no LineFit, no dipole
        ([5, 5, 5], [6000, 6000, 6000], [1.0, 1.0, 1.0], [True] * 3),  # one place, one time
        ([1, 2, 3], [6000, 6100, 6200], [0.0, 0.0, 0.0], [False] * 3),  # no charge at all
    ],
)
def test_degenerate_events_give_finite_features(
    geometry: Geometry, sensor_id: list[int], time: list[int], charge: list[float],
    auxiliary: list[bool],
) -> None:  # fmt: skip
    f = build_features(
        np.array(sensor_id, np.int16),
        np.array(time, np.int64),
        np.array(charge),
        np.array(auxiliary),
        np.array([0, len(sensor_id)]),
        geometry,
    )
    assert np.isfinite(f.values).all() and np.isfinite(f.events).all()
