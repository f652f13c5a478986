import numpy as np
import pytest

from icecube_stream.events.batch import EventBatch, concat_batches
from icecube_stream.events.geometry import Geometry
from icecube_stream.events.ice import DUST_LAYER_Z_M
from icecube_stream.events.simulator import (
    EVENT_TYPES,
    IceModel,
    SimulationConfig,
    Simulator,
    _photons_to_pulses,
    _sample_interactions,
    _Sources,
)
from icecube_stream.events.stats import compute_stats
from icecube_stream.physics.angles import angles_to_vector, angular_distance
from icecube_stream.physics.linefit import robust_linefit

pytestmark = pytest.mark.unit

C = 0.299792458


def _simulate(geometry: Geometry, n: int, seed: int, **config: object) -> EventBatch:
    sim = Simulator(geometry, SimulationConfig(**config), seed=seed)  # type: ignore[arg-type]
    return concat_batches(list(sim.iter_batches(n)))


def _same(a: EventBatch, b: EventBatch) -> bool:
    return (
        np.array_equal(a.event_id, b.event_id)
        and np.array_equal(a.offsets, b.offsets)
        and np.array_equal(a.time, b.time)
        and np.array_equal(a.sensor_id, b.sensor_id)
        and np.array_equal(a.charge, b.charge)
        and np.array_equal(a.azimuth, b.azimuth)
    )


def test_same_seed_same_events_different_seed_different(geometry: Geometry) -> None:
    a = _simulate(geometry, 300, seed=3)
    assert a.n_events == 300
    assert _same(a, _simulate(geometry, 300, seed=3))
    assert not _same(a, _simulate(geometry, 300, seed=4))


def test_first_events_do_not_depend_on_how_many_are_requested(geometry: Geometry) -> None:
    from icecube_stream.events.batch import take_events

    many = _simulate(geometry, 700, seed=5)
    few = _simulate(geometry, 250, seed=5)
    assert _same(take_events(many, 0, 250), few)


def test_no_pulse_arrives_before_light_could(geometry: Geometry) -> None:
    # Without dark noise every pulse is Cherenkov light from the event: it cannot beat the
    # fastest path, even with a group index well below ice's 1.356.
    batch = _simulate(geometry, 600, seed=8, noise_rate_hz=0.0, high_qe_noise_rate_hz=0.0)
    n = 1.30
    event = np.repeat(np.arange(batch.n_events), batch.pulse_counts)
    vertex = np.column_stack([batch.extra[f"vertex_{a}"] for a in "xyz"])[event]
    t0 = batch.extra["vertex_time"][event]
    motion = -angles_to_vector(batch.azimuth, batch.zenith)[event]
    rel = batch.positions - vertex
    along = np.sum(rel * motion, axis=1)
    dist = np.linalg.norm(rel, axis=1)
    perp = np.sqrt(np.maximum(dist**2 - along**2, 0.0))
    is_track = np.isin(batch.extra["event_type"][event], ["track", "starting_track"])
    # Track: min over emission points s of (s + n |r - p(s)|) / c = (l + d sqrt(n^2 - 1)) / c.
    earliest_track = t0 + (along + perp * np.sqrt(n * n - 1)) / C
    earliest_point = t0 + n * dist / C
    earliest = np.where(is_track, np.minimum(earliest_track, earliest_point), earliest_point)
    jitter_allowance = 15.0  # 6 sigma of PMT jitter plus rounding to whole ns
    assert (batch.time >= earliest - jitter_allowance).all()
    # ... and the bound is not vacuous: some photons arrive almost unscattered.
    assert (batch.time - earliest).min() < 5.0
    assert np.mean(batch.time - earliest < 50.0) > 0.03


def test_every_event_satisfies_the_smt8_trigger(geometry: Geometry, simulated: EventBatch) -> None:
    for k in range(simulated.n_events):
        sl = slice(simulated.offsets[k], simulated.offsets[k + 1])
        hlc = ~simulated.auxiliary[sl]
        _, first = np.unique(simulated.sensor_id[sl][hlc], return_index=True)
        times = np.sort(simulated.time[sl][hlc][first])
        assert times.size >= 8
        assert (times[7:] - times[:-7] <= 5000).any(), f"event {simulated.event_id[k]}"


def test_trigger_rejects_dim_events(geometry: Geometry) -> None:
    # At 10 GeV almost nothing should trigger the 8-DOM coincidence; event_id counts candidates.
    dim = _simulate(geometry, 20, seed=2, energy_min_gev=10.0, energy_max_gev=11.0)
    bright = _simulate(geometry, 20, seed=2, energy_min_gev=1e4, energy_max_gev=1.1e4)
    assert dim.event_id[-1] > 5 * bright.event_id[-1]


def test_hlc_pulses_have_a_close_neighbour_on_the_string(simulated: EventBatch) -> None:
    g = simulated.geometry
    checked, with_partner = 0, 0
    for k in range(0, simulated.n_events, 15):
        sl = slice(simulated.offsets[k], simulated.offsets[k + 1])
        s, t, aux = simulated.sensor_id[sl].astype(int), simulated.time[sl], simulated.auxiliary[sl]
        same_string = g.string[s][:, None] == g.string[s][None, :]
        near = np.abs(g.dom[s][:, None] - g.dom[s][None, :])
        coincident = (
            same_string & (near >= 1) & (near <= 2) & (np.abs(t[:, None] - t[None, :]) <= 1000)
        )
        partner = coincident.any(axis=1)
        checked += int((~aux).sum())
        with_partner += int(partner[~aux].sum())
        # SLC pulses have no partner inside the readout window.
        assert not partner[aux].any()
    # A partner may fall just outside the window, so allow a handful.
    assert with_partner >= 0.99 * checked


def test_truth_directions_are_isotropic() -> None:
    inter = _sample_interactions(np.random.default_rng(0), 20_000, SimulationConfig())
    n = inter.zenith.size
    for values in (np.cos(inter.zenith) * 0.5 + 0.5, inter.azimuth / (2 * np.pi)):
        ks = np.max(np.abs(np.sort(values) - (np.arange(1, n + 1) - 0.5) / n))
        assert ks < 1.63 / np.sqrt(n)  # 1 % Kolmogorov-Smirnov critical value


def test_triggered_events_come_from_all_directions(simulated: EventBatch) -> None:
    cos_zen = np.cos(simulated.zenith)
    assert abs(cos_zen.mean()) < 0.1
    counts = np.histogram(cos_zen, bins=4, range=(-1, 1))[0]
    assert counts.min() > 0.15 * simulated.n_events


def test_event_types_and_energies(simulated: EventBatch) -> None:
    types = simulated.extra["event_type"]
    assert set(types) == set(EVENT_TYPES)
    energy = simulated.extra["energy"]
    assert energy.min() >= 100.0
    # A falling power law: far more events at low than at high energy.
    assert np.mean(energy < 1000) > 0.4 and np.mean(energy > 1e5) < 0.05


def test_statistics_sit_in_the_real_event_ranges(simulated: EventBatch) -> None:
    stats = compute_stats([simulated]).as_dict()
    assert 50 <= stats["pulses_median"] <= 80
    assert stats["pulses_max"] > 1000
    assert 5500 <= stats["first_time_median_ns"] <= 6500
    assert 10 <= stats["window_median_us"] <= 20
    assert 0.3 <= stats["aux_fraction_median"] <= 0.8
    assert 0.8 <= stats["charge_median_pe"] <= 1.1


def test_linefit_points_bright_tracks_well(geometry: Geometry) -> None:
    tracks = _simulate(
        geometry,
        150,
        seed=9,
        type_fractions=(1.0, 0.0, 0.0),
        energy_min_gev=1e4,
        energy_max_gev=1e5,
    )
    fit = robust_linefit(tracks.positions, tracks.time, tracks.offsets, tracks.auxiliary)
    errors = angular_distance(
        angles_to_vector(fit.azimuth, fit.zenith), angles_to_vector(tracks.azimuth, tracks.zenith)
    )
    assert np.median(errors) < 0.15  # random guessing: pi / 2
    cascades = _simulate(geometry, 150, seed=9, type_fractions=(0.0, 0.0, 1.0))
    fit_c = robust_linefit(cascades.positions, cascades.time, cascades.offsets, cascades.auxiliary)
    errors_c = angular_distance(
        angles_to_vector(fit_c.azimuth, fit_c.zenith),
        angles_to_vector(cascades.azimuth, cascades.zenith),
    )
    assert np.median(errors_c) > 3 * np.median(errors)


def test_cascades_light_fewer_doms_in_the_dust_than_in_clear_ice_at_equal_distance(
    simulated: EventBatch,
) -> None:
    # Standard DOMs 50-100 m from a cascade vertex: how often does each band see an HLC hit? In
    # a uniform medium the three would agree within statistics.
    g = simulated.geometry
    cascades = np.flatnonzero(simulated.extra["event_type"] == "cascade")
    vertex = np.column_stack([simulated.extra[f"vertex_{a}"] for a in "xyz"])[cascades]
    sq = np.zeros((cascades.size, g.n_sensors))
    for axis in range(3):
        sq += (g.positions[None, :, axis] - vertex[:, axis, None]) ** 2
    near = (sq > 50.0**2) & (sq < 100.0**2) & ~g.high_qe[None, :]
    hit = np.zeros_like(near)
    for row, k in enumerate(cascades):
        sl = slice(simulated.offsets[k], simulated.offsets[k + 1])
        hit[row, simulated.sensor_id[sl][~simulated.auxiliary[sl]]] = True
    band = np.digitize(g.positions[:, 2], DUST_LAYER_Z_M)  # 0 below, 1 dust, 2 above
    pairs = [int(near[:, band == b].sum()) for b in range(3)]
    seen = [float(hit[:, band == b][near[:, band == b]].mean()) for b in range(3)]
    assert min(pairs) > 100, pairs
    below, dust, above = seen
    assert dust < 0.5 * above and dust < 0.5 * below, seen


def test_scattering_delays_light_longer_in_the_dust_at_equal_distance(geometry: Geometry) -> None:
    config = SimulationConfig(
        noise_rate_hz=0.0, high_qe_noise_rate_hz=0.0, afterpulse_probability=0.0
    )
    ice = IceModel.build(geometry, config)
    murkiest = int(np.argmin(ice.neg_inv_attenuation))  # shortest attenuation length
    clearest = int(np.argmax(ice.neg_inv_attenuation))
    n = 20_000
    sources = _Sources()
    rows = np.arange(2 * n)
    sources.add(
        rows,
        (
            rows,
            np.repeat([murkiest, clearest], n),
            np.ones(2 * n, np.float32),  # about one photon each, all 40 m from their DOM
            np.zeros(2 * n, np.float32),
            np.full(2 * n, 40.0, np.float32),
        ),
    )
    pulses = _photons_to_pulses(np.random.default_rng(1), sources, 2 * n, ice, config)
    delay = {dom: pulses.time[pulses.dom == dom] for dom in (murkiest, clearest)}
    assert np.median(delay[murkiest]) > 2 * np.median(delay[clearest])
    for dom, values in delay.items():
        # Each photon's Gamma delay takes its shape and scale from its own DOM.
        pandel_mean = 40.0 * ice.inv_pandel_lambda[dom] * ice.pandel_scale_ns[dom]
        assert np.mean(values) == pytest.approx(pandel_mean, rel=0.05)
