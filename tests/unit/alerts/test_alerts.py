"""The alert policy, the notices and the rate table, without services."""

import math

import numpy as np
import pytest

from icecube_stream.alerts.notice import alert_record, event_name, iso_utc
from icecube_stream.alerts.policy import AlertPolicy
from icecube_stream.alerts.rates import build_rates, load_rates
from icecube_stream.alerts.selection import select_alerts
from icecube_stream.config import Settings
from icecube_stream.wire.codec import MalformedMessageError
from icecube_stream.wire.topics import ALERTS, json_codec

pytestmark = pytest.mark.unit

POLICY = AlertPolicy(min_track_probability=0.5, min_charge=1000.0, max_radius90=math.radians(5))
T0 = 1_796_000_000_123_456_789  # 2026-11-30T00:53:20.123456789Z


def prediction(event_id: int = 7, **changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "event_id": event_id,
        "azimuth": 1.0,
        "zenith": 2.0,
        "angular_uncertainty": math.radians(1.0),
        "model_name": "icecube-direction",
        "model_version": "3",
        "event_time_ns": T0,
        "event_time_source": "emitted",
        "ra": math.radians(359.99999),
        "dec": math.radians(-30.0),
        "track_probability": 0.9,
        "charge": 5000.0,
    }
    return record | changes


def test_policy_needs_every_condition_and_a_classifier():
    track = np.array([0.9, 0.4, 0.9, 0.9, np.nan])
    charge = np.array([2000.0, 2000.0, 999.0, 2000.0, 2000.0])
    radius = np.radians([2.0, 2.0, 2.0, 6.0, 2.0])
    assert POLICY.select(track, charge, radius).tolist() == [True, False, False, False, False]


def test_policy_comes_from_the_settings():
    settings = Settings(alert_min_charge=10.0, alert_max_radius90_deg=20.0)
    policy = AlertPolicy.from_settings(settings)
    assert policy.min_charge == 10.0
    assert policy.max_radius90 == pytest.approx(math.radians(20.0))


def test_notice_satisfies_the_topic_schema_in_gcn_units():
    rates = load_rates()
    notice = alert_record(
        prediction(),
        radius50=math.radians(0.8),
        radius90=math.radians(2.1),
        healpix_url="file:///maps/IceCube-7.multiorder.fits",
        rates=rates,
        trigger_rate_hz=2700.0,
        alert_time_ns=T0 + 1_500_000_000,
    )
    codec = json_codec(ALERTS)
    assert codec.problems(notice) == []
    assert codec.decode(codec.encode(notice)) == notice
    assert notice["ra"] == 0.0  # 359.99999 rounds to 360, which is 0
    assert notice["dec"] == -30.0
    assert notice["ra_dec_error"] == 2.1 and notice["containment_probability"] == 0.9
    assert notice["event_name"] == ["IceCube-261130-7"]
    assert notice["trigger_time"] == "2026-11-30T00:53:20.123456Z"
    assert notice["alert_datetime"] == "2026-11-30T00:53:21.623456Z"
    assert notice["far"] == pytest.approx(rates.far_hz(np.array([5000.0]), 2700.0)[0], rel=1e-3)


def test_schema_refuses_what_gcn_consumers_could_not_read():
    codec = json_codec(ALERTS)
    good = alert_record(
        prediction(), radius50=0.01, radius90=0.03, healpix_url="x", rates=load_rates(),
        trigger_rate_hz=2700.0, alert_time_ns=T0,
    )  # fmt: skip
    for change in ({"dec": -91.0}, {"alert_topology": "Cascade"}, {"ra": "12"}, {"extra": 1}):
        assert codec.problems(good | change), change
    without_far = {k: v for k, v in good.items() if k != "far"}
    assert any("far" in p for p in codec.problems(without_far))
    with pytest.raises(MalformedMessageError):
        codec.decode(b'{"mission": "IceCube"}')
    with pytest.raises(ValueError, match="JSON Schema"):
        codec.encode(good | {"p_astro": 2.0})


def test_selection_builds_one_alert_per_passing_record():
    records = [
        prediction(1),
        prediction(2, charge=10.0),
        prediction(3, track_probability=None),
        prediction(4, angular_uncertainty=math.radians(4.0)),  # r90 = 2.15 sigma > 5 degrees
    ]
    alerts = select_alerts(
        records, POLICY, load_rates(), trigger_rate_hz=2700.0,
        skymap_url=lambda e: f"maps/{e}.fits", alert_time_ns=T0,
    )  # fmt: skip
    assert [a.event_id for a in alerts] == [1]
    (alert,) = alerts
    assert alert.notice["healpix_url"] == "maps/1.fits"
    assert alert.kappa == pytest.approx(1 / math.radians(1.0) ** 2)
    # the 90 % radius of a vMF with sigma 1 degree: sqrt(-2 ln 0.1) sigma, near the pole
    assert alert.notice["ra_dec_error"] == pytest.approx(math.sqrt(-2 * math.log(0.1)), rel=1e-3)
    assert alert.notice["ra_dec_error_50"] == pytest.approx(math.sqrt(2 * math.log(2)), rel=1e-3)


def test_rates_fall_with_charge_and_signal_rises():
    rng = np.random.default_rng(1)
    energy = 100.0 * (1 - rng.random(20_000)) ** -1.0  # E^-2 from 100 GeV
    charge = 0.1 * energy * rng.lognormal(0, 0.3, energy.size)
    rates = build_rates(charge, energy, rng.random(energy.size) < 0.5, generation_index=2.0)
    far = rates.far_hz(np.array([10.0, 100.0, 1e3, 1e4]), 2700.0)
    assert np.all(np.diff(far) < 0)
    p_astro = rates.p_astro_at(np.array([10.0, 1e4]))
    assert p_astro[0] < 0.05
    assert 0.5 < p_astro[1] <= 1.0
    energies = rates.nu_energy_at(np.array([100.0, 1e4]))
    assert 0.5 < energies[0] < 5 and 50 < energies[1] < 500  # TeV: charge = 0.1 x GeV


def test_shipped_table_is_monotonic_and_says_where_it_comes_from():
    rates = load_rates()
    assert np.all(np.diff(rates.background_share) <= 0)
    assert rates.provenance["simulated_events"] >= 100_000
    assert min(rates.p_astro) >= 0
    assert max(rates.p_astro) <= 1


def test_names_and_times_are_utc():
    assert iso_utc(0) == "1970-01-01T00:00:00.000000Z"
    assert event_name(12, 86_400 * 10**9 - 1) == "IceCube-700101-12"
