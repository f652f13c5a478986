"""Detector directions to the sky: IceCube's conventions, astropy's numbers, the fast path's bound,
and astropy kept off the network."""

import subprocess
import sys
import textwrap

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import ICRS, AltAz, EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import data as astropy_data
from astropy.utils import iers

from icecube_stream.sky import coordinates
from icecube_stream.sky.coordinates import to_equatorial, to_local

pytestmark = pytest.mark.unit

SOUTH_POLE = EarthLocation.from_geodetic(
    lon=-62.6081 * u.deg, lat=-89.9944 * u.deg, height=883.9 * u.m
)
PRECESSION_DEG_PER_YEAR = 20.04 / 3600  # the celestial pole drifts ~20" a year in J2000 dec
# Beyond precession: the station's 0.0056 deg from the pole, nutation (< 9.2") and annual
# aberration (< 20.5"), with a little room.
POLE_SLACK_DEG = 0.0056 + 0.0026 + 0.0057 + 0.001


def _ns(iso: str) -> np.int64:
    return np.int64(round(Time(iso, scale="utc").unix * 1e3)) * np.int64(1_000_000)


def _separation_deg(
    ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray
) -> np.ndarray:
    a = SkyCoord(ra=ra1 * u.rad, dec=dec1 * u.rad)
    b = SkyCoord(ra=ra2 * u.rad, dec=dec2 * u.rad)
    return np.asarray(a.separation(b).deg)


def _random_directions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 2 * np.pi, n), np.arccos(rng.uniform(-1, 1, n))


@pytest.mark.parametrize("exact", [True, False])
def test_matches_astropy_altaz_with_icecube_azimuth_convention(exact: bool) -> None:
    times = ["2012-05-13 04:12:00.25", "2020-03-22 12:00:00", "2026-12-03 22:10:30.5"]
    azimuth = np.radians([0.0, 37.0, 90.0, 200.0, 333.0, 123.0])
    zenith = np.radians([90.0, 10.0, 135.0, 60.0, 179.0, 0.5])
    for iso in times:
        # Independently: astropy AltAz at IceCube's site, az = 90 deg - azimuth - longitude,
        # alt = 90 deg - zenith, one SkyCoord per direction.
        expected = [
            SkyCoord(
                az=(90 * u.deg - a * u.rad - SOUTH_POLE.lon),
                alt=(90 * u.deg - z * u.rad),
                frame=AltAz(obstime=Time(iso, scale="utc"), location=SOUTH_POLE),
            ).transform_to(ICRS())
            for a, z in zip(azimuth, zenith, strict=True)
        ]
        ra, dec = to_equatorial(azimuth, zenith, np.full(6, _ns(iso)), exact=exact)
        ra_exp = np.array([c.ra.rad for c in expected])
        dec_exp = np.array([c.dec.rad for c in expected])
        assert _separation_deg(ra, dec, ra_exp, dec_exp).max() < 1e-6
        assert ((ra >= 0) & (ra < 2 * np.pi)).all()


def test_grid_directions_at_the_march_equinox_follow_icecube() -> None:
    # IceCube's own check (i3astropy tests): at noon UTC near the March equinox the first point
    # of Aries is grid north, RA 90 deg grid east, RA 180 grid south, RA 270 grid west.
    ra, dec = to_equatorial(
        np.radians([0.0, 90.0, 180.0, 270.0]), np.pi / 2, _ns("2020-03-22 12:00")
    )
    np.testing.assert_allclose(np.degrees(ra), [90.0, 0.0, 270.0, 180.0], atol=0.5)
    np.testing.assert_allclose(np.degrees(dec), 0.0, atol=0.5)


@pytest.mark.parametrize(("iso", "years"), [("2000-01-01 12:00", 0.0), ("2026-12-03", 26.92)])
def test_zenith_is_the_south_celestial_pole_and_the_horizon_the_equator(
    iso: str, years: float
) -> None:
    # The station is 0.0056 deg from the pole, so its zenith is the pole of date; in J2000 that
    # pole sits precession (20"/yr since 2000) away from dec -90, give or take nutation and
    # aberration. The horizon is the equator of date: |dec| within the same tilt.
    tilt = PRECESSION_DEG_PER_YEAR * years
    azimuth = np.linspace(0, 2 * np.pi, 13)
    _, dec = to_equatorial(azimuth, 0.0, _ns(iso))
    assert np.abs(90.0 + np.degrees(dec) - tilt).max() < POLE_SLACK_DEG
    _, dec = to_equatorial(azimuth, np.pi / 2, _ns(iso))
    assert np.abs(np.degrees(dec)).max() < tilt + POLE_SLACK_DEG
    assert np.abs(np.degrees(dec)).max() > tilt - POLE_SLACK_DEG  # the tilt is really there


def test_half_a_sidereal_day_turns_right_ascension_by_180_degrees() -> None:
    start = _ns("2024-06-01 03:00")
    half_turn = np.int64(round(43200 / 1.00273781191135448 * 1e9))  # half an Earth rotation
    azimuth = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    # On the horizon (dec ~ 0): away from it the 0.14 deg between the pole of date and the J2000
    # pole shifts the turn by ~ 2 * 0.14 deg * tan(dec). Annual aberration (up to 20.5") pushes
    # the two opposite directions apart by up to 2 * 20.5" = 0.0114 deg.
    ra1, _ = to_equatorial(azimuth, np.pi / 2, start)
    ra2, _ = to_equatorial(azimuth, np.pi / 2, start + half_turn)
    turned = np.degrees(np.mod(ra2 - ra1, 2 * np.pi))
    np.testing.assert_allclose(turned, 180.0, atol=0.0125)
    assert np.abs(turned - 180.0).max() > 0.001  # aberration is applied, not left out


def test_fast_path_stays_within_1e_5_degrees_of_the_exact_transform() -> None:
    azimuth, zenith = _random_directions(256, seed=3)
    rng = np.random.default_rng(4)
    # a worker batch (< 1 s), one spanning a window boundary, one spanning hours
    for span_s in (1, 400, 5 * 3600):
        times = _ns("2026-07-04 09:59:50") + rng.integers(0, span_s * 10**9, 256)
        fast = to_equatorial(azimuth, zenith, times)
        exact = to_equatorial(azimuth, zenith, times, exact=True)
        assert _separation_deg(*fast, *exact).max() < 1e-5


def test_to_local_inverts_to_equatorial_on_both_paths() -> None:
    azimuth, zenith = _random_directions(200, seed=5)
    times = _ns("2023-01-15 00:00") + np.arange(200, dtype=np.int64) * 7_000_000_000
    for exact in (False, True):
        ra, dec = to_equatorial(azimuth, zenith, times, exact=exact)
        back_az, back_zen = to_local(ra, dec, times, exact=exact)
        np.testing.assert_allclose(back_zen, zenith, atol=1e-8)
        wrapped = np.angle(np.exp(1j * (back_az - azimuth)))
        assert np.abs(wrapped * np.sin(zenith)).max() < 1e-8


def test_shapes_broadcast_and_float_times_are_refused() -> None:
    ra, dec = to_equatorial(np.zeros((2, 3)), 1.0, _ns("2022-02-02"))
    assert ra.shape == dec.shape == (2, 3)
    ra, dec = to_equatorial(0.3, 1.0, _ns("2022-02-02"))
    assert ra.shape == ()
    with pytest.raises(TypeError, match="integer nanoseconds"):
        to_equatorial(0.3, 1.0, 1.7e18)


def test_importing_the_package_keeps_astropy_offline() -> None:
    assert iers.conf.auto_download is False
    assert astropy_data.conf.allow_internet is False
    assert iers.conf.iers_degraded_accuracy == "warn"
    assert coordinates.WINDOW_S == 300


def test_transforms_in_a_fresh_process_open_no_connection() -> None:
    """Every socket and URL opener refuses; the first transforms load the IERS and leap-second
    tables from the installed data (times inside and beyond their range) and must not try."""
    script = textwrap.dedent(
        """
        import socket, sys, urllib.request
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(args[:2])
            raise OSError("network use in a sky transform")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        urllib.request.urlopen = refuse
        import warnings
        warnings.simplefilter("ignore")
        import numpy as np
        from icecube_stream.sky.coordinates import to_equatorial, to_local
        for seconds in (1_000_000_000, 1_780_000_000, 2_200_000_000):
            t = np.int64(seconds) * 10**9 + np.arange(4, dtype=np.int64)
            ra, dec = to_equatorial(np.ones(4), np.ones(4), t, exact=True)
            to_equatorial(np.ones(4), np.ones(4), t)
            to_local(ra, dec, t, exact=True)
            assert np.isfinite(ra).all() and np.isfinite(dec).all()
        from astropy.utils.data import download_file
        try:  # even an explicit download is refused before it reaches a socket
            download_file("https://datacenter.iers.org/data/9/finals2000A.all", cache=False)
        except Exception as error:
            assert "supposed to be downloaded" in str(error), error
        else:
            sys.exit(2)
        print("attempts", len(attempts))
        sys.exit(1 if attempts else 0)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "attempts 0" in done.stdout
