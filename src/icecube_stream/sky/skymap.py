"""Multi-order (MOC) HEALPix probability maps of an event's direction, and their credible regions.

The layout is the one LIGO/Virgo/KAGRA and IceCube publish (ligo.skymap's `io/fits.py`): one row
per pixel, UNIQ = 4 * 4**order + nested index (int64) and PROBDENSITY (sr^-1), equatorial (ICRS)
coordinates, header PIXTYPE=HEALPIX, ORDERING=NUNIQ, COORDSYS=C, MOC=T. Pixels are refined only
where the probability is, so a 0.1 deg track and a 70 deg cascade both fit in a few thousand rows,
where a flat map fine enough for the track would hold 50 million.

The posterior is von Mises-Fisher: density kappa / (4 pi sinh kappa) * exp(kappa cos theta),
evaluated as kappa / (2 pi (1 - e^{-2 kappa})) * exp(-kappa (1 - cos theta)) with 1 - cos theta
from the chord, so kappa = 1e6 neither overflows nor loses the core to rounding. The functions
here are pure (a table in, numbers out); plotting loads matplotlib only when called.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import astropy.units as u  # type: ignore[import-untyped]
import astropy_healpix as ah  # type: ignore[import-untyped]
import numpy as np
from astropy.table import Table  # type: ignore[import-untyped]
from numpy.typing import ArrayLike, NDArray

from icecube_stream.physics.vmf import vmf_radius

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

BASE_ORDER = 3
"""Every map starts from the 768 pixels of order 3 (7.3 deg)."""
MAX_ORDER = 12
"""Finest pixels: order 12, 0.014 deg, about a tenth of the best 90 % radius a track reaches."""
MAX_ROWS = 20_000
PIXELS_PER_RADIUS = 8
"""Pixels are split until they are this many times smaller than the 90 % radius."""
NEGLIGIBLE = 1e-7
"""A pixel that cannot hold more probability than this is not split."""
SUBSAMPLE_ORDERS = 2
"""A leaf's density is the mean over its 4**2 sub-pixel centres, not its centre alone."""
CREATOR = "icecube-stream"

HEADER_COMMENTS: dict[str, str] = {
    "PIXTYPE": "HEALPIX pixelisation",
    "ORDERING": "Pixel ordering scheme: RING, NESTED, or NUNIQ",
    "COORDSYS": "Ecliptic, Galactic or Celestial (equatorial)",
    "MOC": "Multi-order map",
    "MOCORDER": "MOC resolution (best order)",
    "INDXSCHM": "Indexing: IMPLICIT or EXPLICIT",
    "OBJECT": "Unique identifier for this event",
    "EVENTID": "Event id in the stream",
    "DATE-OBS": "UTC date of the observation",
    "MJD-OBS": "Modified Julian date of the observation (UTC)",
    "EVENTMJD": "Modified Julian date of the event (UTC)",
    "CREATOR": "Program that created this file",
    "RA": "Best fit right ascension (ICRS), degree",
    "DEC": "Best fit declination (ICRS), degree",
    "KAPPA": "von Mises-Fisher concentration",
    "R50": "50% containment radius, degree",
    "R90": "90% containment radius, degree",
}


def vmf_skymap(
    ra: float,
    dec: float,
    kappa: float,
    *,
    name: str,
    time_ns: int,
    event_id: int | None = None,
    max_order: int = MAX_ORDER,
    max_rows: int = MAX_ROWS,
) -> Table:
    """The multi-order map of vMF(mean (ra, dec) in radians, kappa), normalised to 1."""
    uniq, density = vmf_moc(ra, dec, kappa, max_order=max_order, max_rows=max_rows)
    density = density / float(np.sum(density * pixel_area(uniq)))
    order = int(np.max(ah.uniq_to_level_ipix(uniq)[0]))
    table = Table([uniq, density * u.sr**-1], names=("UNIQ", "PROBDENSITY"))
    meta: dict[str, Any] = {
        "PIXTYPE": "HEALPIX",
        "ORDERING": "NUNIQ",
        "COORDSYS": "C",
        "MOC": True,
        "MOCORDER": order,
        "INDXSCHM": "EXPLICIT",
        "OBJECT": name,
    }
    if event_id is not None:
        meta["EVENTID"] = int(event_id)
    mjd = _mjd(time_ns)
    meta |= {
        "DATE-OBS": _iso(time_ns),
        "MJD-OBS": mjd,
        "EVENTMJD": mjd,
        "CREATOR": CREATOR,
        "RA": round(float(np.degrees(ra)) % 360.0, 6),
        "DEC": round(float(np.degrees(dec)), 6),
        "KAPPA": float(kappa),
        "R50": round(float(np.degrees(vmf_radius(np.asarray(kappa, np.float64), 0.5))), 6),
        "R90": round(float(np.degrees(vmf_radius(np.asarray(kappa, np.float64), 0.9))), 6),
    }
    table.meta.update(meta)
    return table


def vmf_moc(
    ra: float,
    dec: float,
    kappa: float,
    *,
    max_order: int = MAX_ORDER,
    max_rows: int = MAX_ROWS,
) -> tuple[IntArray, FloatArray]:
    """(UNIQ, pixel-mean density in sr^-1) of the adaptive map, sorted by UNIQ, not renormalised:
    sum(density * area) departs from 1 by the refinement's own integration error."""
    k = max(float(kappa), 1e-9)
    mean = _unit(ra, dec)
    target = float(vmf_radius(np.asarray(k, np.float64), 0.9)) / PIXELS_PER_RADIUS
    order = BASE_ORDER
    ipix = np.arange(12 * 4**order, dtype=np.int64)
    done: list[IntArray] = []
    rows = 0
    while True:
        split = np.zeros(ipix.size, dtype=bool)
        resolution = float(ah.nside_to_pixel_resolution(2**order).to_value(u.rad))
        if order < max_order and resolution > target:
            bound = _probability_bound(ipix, order, mean, k)
            split = bound > NEGLIGIBLE
            room = (max_rows - rows - ipix.size) // 3
            if np.count_nonzero(split) > room:  # keep the map small: split the richest only
                split[:] = False
                split[np.argsort(bound)[::-1][: max(room, 0)]] = True
        leaves = ipix[~split]
        done.append(ah.level_ipix_to_uniq(order, leaves).astype(np.int64))
        rows += leaves.size
        if not split.any():
            break
        ipix = (ipix[split][:, None] * 4 + np.arange(4)).ravel()
        order += 1
    uniq = np.sort(np.concatenate(done))
    return uniq, _mean_density(uniq, mean, k)


def pixel_area(uniq: ArrayLike) -> FloatArray:
    """Solid angle of each pixel in sr."""
    level, _ = ah.uniq_to_level_ipix(np.asarray(uniq, np.int64))
    return np.asarray(4.0 * np.pi / (12.0 * 4.0 ** np.asarray(level, np.float64)), np.float64)


def probabilities(table: Table) -> FloatArray:
    """Probability held by each row: PROBDENSITY times pixel area."""
    density = np.asarray(table["PROBDENSITY"], np.float64)
    return np.asarray(density * pixel_area(table["UNIQ"]), np.float64)


def searched_probability(table: Table) -> FloatArray:
    """Per row, the probability of all pixels at least as dense (itself included): the smallest
    credible level whose region contains the pixel."""
    density = np.asarray(table["PROBDENSITY"], np.float64)
    order = np.argsort(-density, kind="stable")
    cumulative = np.cumsum(probabilities(table)[order])
    searched = np.empty_like(cumulative)
    searched[order] = cumulative
    return searched


def credible_region(table: Table, level: float) -> NDArray[np.bool_]:
    """Rows of the smallest region holding `level` of the probability (densest pixels first,
    up to and including the pixel that reaches the level)."""
    searched = searched_probability(table)
    reached = searched >= level
    if not reached.any():  # level at or above the rounding of the total: the whole sky
        return np.ones(searched.size, dtype=bool)
    return np.asarray(searched <= np.min(searched[reached]), dtype=bool)


def containment(table: Table, level: float) -> float:
    """Area in deg^2 of the `level` credible region."""
    area = pixel_area(table["UNIQ"])[credible_region(table, level)]
    return float(np.sum(area) * np.degrees(1.0) ** 2)


def row_of(table: Table, ra: ArrayLike, dec: ArrayLike) -> IntArray:
    """The row whose pixel holds each direction (radians)."""
    level, ipix = ah.uniq_to_level_ipix(np.asarray(table["UNIQ"], np.int64))
    finest = int(np.max(level))
    shift = 2 * (finest - np.asarray(level, np.int64))
    start = np.asarray(ipix, np.int64) << shift
    by_start = np.argsort(start)
    lon = np.asarray(ra, np.float64) * u.rad
    lat = np.asarray(dec, np.float64) * u.rad
    index = ah.lonlat_to_healpix(lon, lat, 2**finest, order="nested").astype(np.int64)
    found = np.searchsorted(start[by_start], index, side="right") - 1
    return np.asarray(by_start[found], np.int64)


def contains(table: Table, ra: ArrayLike, dec: ArrayLike, level: float) -> NDArray[np.bool_]:
    """Whether each direction (radians) lies inside the `level` credible region."""
    return np.asarray(credible_region(table, level)[row_of(table, ra, dec)], dtype=bool)


def best_fit(table: Table) -> tuple[float, float]:
    """(ra, dec) in degrees the map was made around (its RA/DEC header)."""
    return float(table.meta["RA"]), float(table.meta["DEC"])


def render_png(table: Table, *, title: str | None = None) -> bytes:
    """A PNG: the full sky (Mollweide, RA growing to the left) and a zoom around the best fit,
    the map's density, the best fit marked, the 50 % and 90 % contours from the map's own
    cumulative probability."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend stays as it is

    ra0, dec0 = np.radians(best_fit(table))
    searched = searched_probability(table)
    density = np.asarray(table["PROBDENSITY"], np.float64)
    name = str(table.meta.get("OBJECT", ""))
    moment = str(table.meta.get("DATE-OBS", ""))
    figure = Figure(figsize=(13, 5), layout="constrained")
    panels = figure.add_gridspec(1, 2, width_ratios=(1.6, 1))
    sky = figure.add_subplot(panels[0], projection="mollweide")
    lon = np.linspace(-np.pi, np.pi, 721)
    lat = np.linspace(-np.pi / 2, np.pi / 2, 361)
    grid_lon, grid_lat = np.meshgrid(lon, lat)
    rows = row_of(table, np.pi - grid_lon, grid_lat)  # x = pi - RA: RA grows to the left
    sky.pcolormesh(grid_lon, grid_lat, density[rows], cmap="Blues", shading="auto")
    sky.contour(grid_lon, grid_lat, searched[rows], levels=[0.9], colors="crimson")
    sky.plot(np.pi - ra0, dec0, "*", color="gold", mec="k", ms=12)
    ticks = np.radians(np.arange(-120, 121, 60))  # RA in hours, as star charts write it
    sky.set_xticks(ticks, [f"{round(np.degrees(np.pi - t)) // 15}h" for t in ticks], fontsize=9)
    sky.tick_params(axis="y", labelsize=9)
    sky.grid(True, alpha=0.4)
    sky.set_title("full sky (RA, Dec)")
    zoom = figure.add_subplot(panels[1])
    half = max(3.0 * np.radians(float(table.meta.get("R90", 1.0))), 1e-3)
    half = min(half, np.radians(60.0))
    xi = np.linspace(-half, half, 301)
    grid_x, grid_y = np.meshgrid(xi, xi)
    zoom_ra, zoom_dec = _gnomonic_inverse(grid_x, grid_y, ra0, dec0)
    rows = row_of(table, zoom_ra, zoom_dec)
    east, north = np.degrees(grid_x), np.degrees(grid_y)
    zoom.pcolormesh(east, north, density[rows], cmap="Blues", shading="auto")
    lines = zoom.contour(
        east, north, searched[rows], levels=[0.5, 0.9], colors=["darkorange", "crimson"]
    )
    zoom.clabel(lines, fmt={0.5: "50%", 0.9: "90%"})
    zoom.plot(0, 0, "*", color="gold", mec="k", ms=14)
    zoom.invert_xaxis()  # east to the left, as on the sky
    zoom.set_aspect("equal")
    zoom.set_xlabel("offset east (deg, tangent plane)")
    zoom.set_ylabel("offset north (deg)")
    zoom.set_title(
        f"RA {np.degrees(ra0):.2f}°, Dec {np.degrees(dec0):+.2f}°, "
        f"90 %: {containment(table, 0.9):.3g} deg²"
    )
    figure.suptitle(title or f"{name}  {moment} UTC")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def header_cards(meta: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """(key, value, comment) for the FITS header, known keys with their comments."""
    return [(key, value, HEADER_COMMENTS.get(key, "")) for key, value in meta.items()]


def _unit(ra: float, dec: float) -> FloatArray:
    return np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _one_minus_cos(xyz: FloatArray, mean: FloatArray) -> FloatArray:
    """1 - cos(angle to the mean) as half the squared chord: exact next to the mean."""
    return np.asarray(0.5 * np.sum((xyz - mean) ** 2, axis=-1), np.float64)


def _density(one_minus_cos: FloatArray, kappa: float) -> FloatArray:
    norm = kappa / (2.0 * np.pi * -np.expm1(-2.0 * kappa))
    return np.asarray(norm * np.exp(-kappa * one_minus_cos), np.float64)


def _xyz(ipix: IntArray, order: int) -> FloatArray:
    x, y, z = ah.healpix_to_xyz(ipix, 2**order, order="nested")
    return np.stack([x, y, z], axis=-1)


def _probability_bound(ipix: IntArray, order: int, mean: FloatArray, kappa: float) -> FloatArray:
    """The most probability each pixel could hold: the density at its point nearest the mean
    (centre distance minus 1.1 times its centre-to-corner radius) times its area."""
    nside = 2**order
    centre = _xyz(ipix, order)
    corner_lon, corner_lat = ah.boundaries_lonlat(ipix, 1, nside, order="nested")
    clat = np.cos(corner_lat.to_value(u.rad))
    corners = np.stack(
        [
            clat * np.cos(corner_lon.to_value(u.rad)),
            clat * np.sin(corner_lon.to_value(u.rad)),
            np.sin(corner_lat.to_value(u.rad)),
        ],
        axis=-1,
    )
    radius = np.max(_angle(corners, centre[:, None, :]), axis=1)
    nearest = np.maximum(_angle(centre, mean) - 1.1 * radius, 0.0)
    area = 4.0 * np.pi / (12.0 * 4.0**order)
    return _density(1.0 - np.cos(nearest), kappa) * area


def _angle(a: FloatArray, b: FloatArray) -> FloatArray:
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    return np.asarray(np.arctan2(cross, np.sum(a * b, axis=-1)), np.float64)


def _mean_density(uniq: IntArray, mean: FloatArray, kappa: float) -> FloatArray:
    level, ipix = ah.uniq_to_level_ipix(uniq)
    level = np.asarray(level, np.int64)
    ipix = np.asarray(ipix, np.int64)
    out = np.empty(uniq.size, np.float64)
    children = 4**SUBSAMPLE_ORDERS
    for order in np.unique(level):
        rows = np.flatnonzero(level == order)
        sub = (ipix[rows][:, None] * children + np.arange(children)).ravel()
        xyz = _xyz(sub, int(order) + SUBSAMPLE_ORDERS)
        values = _density(_one_minus_cos(xyz, mean), kappa).reshape(rows.size, children)
        out[rows] = values.mean(axis=1)
    return out


def _gnomonic_inverse(
    x: FloatArray, y: FloatArray, ra0: float, dec0: float
) -> tuple[FloatArray, FloatArray]:
    """(ra, dec) of tangent-plane offsets (x east, y north, radians) around (ra0, dec0)."""
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    sin_c, cos_c = np.sin(c), np.cos(c)
    safe = np.where(rho > 0, rho, 1.0)
    dec = np.arcsin(cos_c * np.sin(dec0) + y * sin_c * np.cos(dec0) / safe)
    ra = ra0 + np.arctan2(x * sin_c, rho * np.cos(dec0) * cos_c - y * np.sin(dec0) * sin_c)
    return np.mod(ra, 2 * np.pi), dec


def _iso(time_ns: int) -> str:
    moment = datetime.fromtimestamp(time_ns // 1000 / 1e6, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


def _mjd(time_ns: int) -> float:
    return round(40587.0 + time_ns / 86_400e9, 9)
