"""IceCube detector directions to the sky (ICRS right ascension and declination) and back.

The conventions are IceCube's own (icetray `astro`, `i3astropy`; docs/sky.md has the
citations): the detector sits at geodetic latitude -89.9944 deg, longitude -62.6081 deg,
883.9 m above the ellipsoid; zenith is the zenith distance of the direction the neutrino came
from (astropy altitude = 90 deg - zenith), and IceCube azimuth, counted counter-clockwise from
grid east (+x), maps to astropy's east-of-north azimuth as az = 90 deg - azimuth - longitude.
No refraction (no atmosphere in the ice).

Two paths with the same astropy/ERFA chain (observed -> CIRS -> ICRS: polar motion, Earth
rotation, precession-nutation, aberration, light deflection):

- exact: one astropy transform with every event's own obstime (~15 ms per 256 events).
- fast (the default, the worker's path): the ERFA astrometry context that astropy computes for
  a transform is built once per 300 s window of event time and reused; each event only moves
  the Earth rotation angle on by its offset from the window start. What that leaves out is how
  aberration, precession and nutation drift within 300 s: below 1e-6 deg (measured against the
  exact path, tested below 1e-5 deg), at about 0.2 ms per 256 events once the window's context
  is cached.
"""

from __future__ import annotations

from functools import lru_cache

import astropy.units as u  # type: ignore[import-untyped]
import erfa  # type: ignore[import-untyped]
import numpy as np
from astropy.coordinates import ICRS, AltAz, EarthLocation, SkyCoord  # type: ignore[import-untyped]
from astropy.coordinates.erfa_astrom import erfa_astrom  # type: ignore[import-untyped]
from astropy.time import Time  # type: ignore[import-untyped]
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

LATITUDE_DEG = -89.9944
LONGITUDE_DEG = -62.6081
HEIGHT_M = 883.9
ICECUBE = EarthLocation.from_geodetic(
    lon=LONGITUDE_DEG * u.deg, lat=LATITUDE_DEG * u.deg, height=HEIGHT_M * u.m
)
WINDOW_S = 300
"""Event times share one astrometry context per window of this many seconds."""

_LONGITUDE = np.radians(LONGITUDE_DEG)
_ERA_PER_SECOND = 2.0 * np.pi * 1.00273781191135448 / 86400.0  # Earth rotation angle rate
_NS = 1_000_000_000


def to_equatorial(
    azimuth: ArrayLike, zenith: ArrayLike, time_ns: ArrayLike, *, exact: bool = False
) -> tuple[FloatArray, FloatArray]:
    """(ra in [0, 2pi), dec) in radians, ICRS, for IceCube (azimuth, zenith) at Unix ns times."""
    az, zen, t = _broadcast(azimuth, zenith, time_ns)
    astro_az = np.pi / 2.0 - az - _LONGITUDE
    if exact:
        frame = AltAz(obstime=_times(t), location=ICECUBE)
        local = SkyCoord(az=astro_az * u.rad, alt=(np.pi / 2.0 - zen) * u.rad, frame=frame)
        sky = local.transform_to(ICRS())
        return _wrap(sky.ra.to_value(u.rad)), np.asarray(sky.dec.to_value(u.rad), np.float64)
    astrom = _contexts(t)
    cirs_ra, cirs_dec = erfa.atoiq("A", astro_az, zen, astrom)
    ra, dec = erfa.aticq(cirs_ra, cirs_dec, astrom)
    return _wrap(ra), np.asarray(dec, np.float64)


def to_local(
    ra: ArrayLike, dec: ArrayLike, time_ns: ArrayLike, *, exact: bool = False
) -> tuple[FloatArray, FloatArray]:
    """The inverse: (IceCube azimuth in [0, 2pi), zenith) of ICRS (ra, dec) at Unix ns times."""
    r, d, t = _broadcast(ra, dec, time_ns)
    if exact:
        frame = AltAz(obstime=_times(t), location=ICECUBE)
        local = SkyCoord(ra=r * u.rad, dec=d * u.rad, frame=ICRS()).transform_to(frame)
        astro_az = local.az.to_value(u.rad)
        zenith = np.pi / 2.0 - local.alt.to_value(u.rad)
    else:
        astrom = _contexts(t)
        cirs_ra, cirs_dec = erfa.atciq(r, d, 0.0, 0.0, 0.0, 0.0, astrom)
        astro_az, zenith, *_ = erfa.atioq(cirs_ra, cirs_dec, astrom)
    return _wrap(np.pi / 2.0 - astro_az - _LONGITUDE), np.asarray(zenith, np.float64)


def _broadcast(
    a: ArrayLike, b: ArrayLike, time_ns: ArrayLike
) -> tuple[FloatArray, FloatArray, NDArray[np.int64]]:
    """Angles as float64 and times as int64, broadcast to one shape. Float times are refused:
    float64 holds today's Unix time in ns only to 256 ns steps, and a float is more often
    seconds passed by mistake."""
    t = np.asarray(time_ns)
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"time_ns must be integer nanoseconds, got {t.dtype}")
    x, y, t = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64), t)
    return x, y, t.astype(np.int64)


def _times(time_ns: NDArray[np.int64]) -> Time:
    """astropy Times from Unix ns without float64 rounding (seconds and fraction apart)."""
    seconds, rest = np.divmod(time_ns, _NS)
    return Time(seconds.astype(np.float64), rest / 1e9, format="unix", scale="utc")


def _contexts(time_ns: NDArray[np.int64]) -> NDArray[np.void]:
    """One ERFA astrometry context per event: its window's, with the Earth rotated on."""
    start = np.floor_divide(time_ns, _NS * WINDOW_S) * WINDOW_S
    windows, which = np.unique(start, return_inverse=True)
    base = np.stack([_window_context(int(w)) for w in windows.ravel()])
    astrom = base[which.reshape(time_ns.shape)]
    offset = (time_ns - start * _NS) / 1e9
    astrom["eral"] = np.mod(astrom["eral"] + _ERA_PER_SECOND * offset, 2.0 * np.pi)
    return astrom


@lru_cache(maxsize=32)
def _window_context(start_s: int) -> NDArray[np.void]:
    """The astrometry context astropy's AltAz <-> ICRS transform uses at a window's start."""
    frame = AltAz(obstime=Time(float(start_s), format="unix", scale="utc"), location=ICECUBE)
    context: NDArray[np.void] = erfa_astrom.get().apco(frame)
    return context


def _wrap(angle: ArrayLike) -> FloatArray:
    wrapped = np.mod(np.asarray(angle, np.float64), 2.0 * np.pi)
    return np.where(wrapped >= 2.0 * np.pi, 0.0, wrapped)
