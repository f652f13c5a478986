"""Multi-order vMF sky maps: normalisation, size, credible regions that cover at their level,
and FITS files that read back unchanged from a folder or an fsspec URL."""

from pathlib import Path

import astropy_healpix as ah
import numpy as np
import pytest
from astropy.io import fits

from icecube_stream.physics.vmf import vmf_radius
from icecube_stream.sky.skymap import (
    MAX_ROWS,
    best_fit,
    containment,
    contains,
    pixel_area,
    probabilities,
    row_of,
    vmf_moc,
    vmf_skymap,
)
from icecube_stream.sky.store import plot_skymap, read_skymap, skymap_url, write_skymap

pytestmark = pytest.mark.unit

TIME_NS = 1_780_000_123_456_789_000  # 2026-05-28T20:28:43.456789 UTC


def _draw_vmf(ra: float, dec: float, kappa: float, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """n directions from vMF(kappa) around (ra, dec), sampled exactly (inverse CDF of cos)."""
    rng = np.random.default_rng(seed)
    one_minus_w = -np.log1p(rng.random(n) * np.expm1(-2.0 * kappa)) / kappa  # 1 - cos(angle)
    sin_angle = np.sqrt(one_minus_w * (2.0 - one_minus_w))
    phi = rng.uniform(0, 2 * np.pi, n)
    mean = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    east = np.array([-np.sin(ra), np.cos(ra), 0.0])
    north = np.cross(mean, east)
    xyz = (
        (1.0 - one_minus_w)[:, None] * mean
        + (sin_angle * np.cos(phi))[:, None] * east
        + (sin_angle * np.sin(phi))[:, None] * north
    )
    return np.arctan2(xyz[:, 1], xyz[:, 0]) % (2 * np.pi), np.arcsin(np.clip(xyz[:, 2], -1, 1))


@pytest.mark.parametrize("kappa", [3.0, 30.0, 1e3, 3e4, 1e5, 1e6])
@pytest.mark.parametrize(("ra", "dec"), [(1.0, 0.3), (5.5, -1.5), (0.01, 1.2)])
def test_probability_integrates_to_one_without_renormalising(
    kappa: float, ra: float, dec: float
) -> None:
    uniq, density = vmf_moc(ra, dec, kappa)
    assert abs(np.sum(density * pixel_area(uniq)) - 1.0) < 1e-3
    assert uniq.size < MAX_ROWS
    assert np.array_equal(uniq, np.unique(uniq))
    # The pixels tile the sphere exactly once.
    assert np.isclose(pixel_area(uniq).sum(), 4 * np.pi, rtol=1e-12)


def test_pixels_near_the_best_fit_are_small_compared_with_the_90_percent_radius() -> None:
    kappa = 1e5
    table = vmf_skymap(2.0, -0.4, kappa, name="IceCube-1", time_ns=TIME_NS)
    r90 = float(vmf_radius(np.float64(kappa), 0.9))
    row = row_of(table, 2.0, -0.4)
    resolution = np.sqrt(pixel_area(table["UNIQ"][row : row + 1]))[0]
    assert resolution <= r90 / 8
    assert np.isclose(probabilities(table).sum(), 1.0, rtol=1e-12)
    assert table.meta["MOCORDER"] >= 10


@pytest.mark.parametrize("kappa", [3.0, 100.0, 1e4, 1e6])
def test_90_percent_region_contains_the_truth_90_percent_of_the_time(kappa: float) -> None:
    ra, dec = 3.3, -0.7
    table = vmf_skymap(ra, dec, kappa, name="IceCube-7", time_ns=TIME_NS)
    true_ra, true_dec = _draw_vmf(ra, dec, kappa, 1000, seed=int(np.log10(kappa) * 10))
    covered = contains(table, true_ra, true_dec, 0.9).mean()
    assert 0.875 <= covered <= 0.925
    assert 0.475 <= contains(table, true_ra, true_dec, 0.5).mean() <= 0.525


@pytest.mark.parametrize("kappa", [3.0, 300.0, 3e4, 1e6])
def test_credible_areas_match_the_vmf_cap(kappa: float) -> None:
    table = vmf_skymap(0.5, 0.1, kappa, name="IceCube-9", time_ns=TIME_NS)
    for level in (0.5, 0.9):
        radius = float(vmf_radius(np.float64(kappa), level))
        cap_deg2 = 2 * np.pi * (1 - np.cos(radius)) * np.degrees(1) ** 2
        assert containment(table, level) == pytest.approx(cap_deg2, rel=0.02)


def test_header_carries_the_moc_layout_and_the_event() -> None:
    table = vmf_skymap(
        np.radians(250.0), np.radians(-12.5), 5e3, name="IceCube-42", time_ns=TIME_NS, event_id=42
    )
    meta = table.meta
    assert (meta["PIXTYPE"], meta["ORDERING"], meta["COORDSYS"], meta["MOC"]) == (
        "HEALPIX",
        "NUNIQ",
        "C",
        True,
    )
    assert meta["OBJECT"] == "IceCube-42" and meta["EVENTID"] == 42
    assert meta["DATE-OBS"] == "2026-05-28T20:28:43.456789"
    assert meta["MJD-OBS"] == pytest.approx(61188.853281, abs=1e-6)
    assert best_fit(table) == (250.0, -12.5)
    assert meta["R90"] == pytest.approx(np.degrees(vmf_radius(np.float64(5e3), 0.9)), abs=1e-6)
    levels, _ = ah.uniq_to_level_ipix(np.asarray(table["UNIQ"]))
    assert meta["MOCORDER"] == levels.max()


def test_file_reads_back_identical_with_astropy_fits(tmp_path: Path) -> None:
    table = vmf_skymap(1.0, 0.5, 2e4, name="IceCube-5", time_ns=TIME_NS, event_id=5)
    url = skymap_url(str(tmp_path / "maps"), 5)
    assert url == f"{tmp_path}/maps/IceCube-5.multiorder.fits"
    write_skymap(table, url)
    assert [p.name for p in (tmp_path / "maps").iterdir()] == ["IceCube-5.multiorder.fits"]
    with fits.open(url) as hdus:
        data, header = hdus[1].data, hdus[1].header
        assert data.columns.names == ["UNIQ", "PROBDENSITY"]
        assert data.columns["UNIQ"].format == "K" and data.columns["PROBDENSITY"].unit == "sr-1"
        assert np.array_equal(data["UNIQ"], np.asarray(table["UNIQ"]))
        assert np.array_equal(data["PROBDENSITY"], np.asarray(table["PROBDENSITY"]))
        for key, value in table.meta.items():
            assert header[key] == value, key
    again = read_skymap(url)
    assert np.array_equal(again["UNIQ"], table["UNIQ"]) and again["UNIQ"].dtype == np.int64
    assert np.array_equal(again["PROBDENSITY"], table["PROBDENSITY"])
    assert {k: again.meta[k] for k in table.meta} == dict(table.meta)
    assert containment(again, 0.9) == containment(table, 0.9)


def test_same_event_same_bytes_and_memory_urls_work() -> None:
    table = vmf_skymap(4.0, -1.0, 800.0, name="IceCube-77", time_ns=TIME_NS, event_id=77)
    url = skymap_url("memory://skymaps/test/", 77)
    assert url == "memory://skymaps/test/IceCube-77.multiorder.fits"
    write_skymap(table, url)
    first = read_skymap(url)
    write_skymap(vmf_skymap(4.0, -1.0, 800.0, name="IceCube-77", time_ns=TIME_NS, event_id=77), url)
    assert np.array_equal(read_skymap(url)["PROBDENSITY"], first["PROBDENSITY"])
    with pytest.raises(FileNotFoundError):
        read_skymap(skymap_url("memory://skymaps/test", 78))


def test_plot_writes_a_png(tmp_path: Path) -> None:
    table = vmf_skymap(0.2, 0.9, 1e4, name="IceCube-3", time_ns=TIME_NS)
    png = tmp_path / "deeper" / "map.png"
    plot_skymap(table, str(png))
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_row_budget_is_kept_by_splitting_the_richest_pixels_only() -> None:
    for max_rows in (800, 2000):
        uniq, density = vmf_moc(1.0, -0.3, 1e5, max_rows=max_rows)
        assert uniq.size <= max_rows
        assert abs(np.sum(density * pixel_area(uniq)) - 1.0) < 1e-3
        assert ah.uniq_to_level_ipix(uniq)[0].max() > 5  # still refined where it matters


def test_row_of_wraps_right_ascension() -> None:
    table = vmf_skymap(0.0, 0.0, 1e4, name="IceCube-8", time_ns=TIME_NS)
    rows = row_of(table, np.array([-0.01, 2 * np.pi - 0.01, 0.01, 2 * np.pi + 0.01]), 0.0)
    assert rows[0] == rows[1] and rows[2] == rows[3] and rows[0] != rows[2]
