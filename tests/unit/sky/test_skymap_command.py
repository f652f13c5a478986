"""`icecube-stream skymap EVENT_ID`: figures of a stored map, a PNG on request, and one red
line for an event without a map."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from icecube_stream.cli import app
from icecube_stream.config import get_settings
from icecube_stream.physics.vmf import vmf_radius
from icecube_stream.sky.skymap import vmf_skymap
from icecube_stream.sky.store import skymap_url, write_skymap

pytestmark = pytest.mark.unit


@pytest.fixture
def maps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A map folder set through the environment, settings read afresh."""
    for name in list(os.environ):
        if name.upper().startswith("ICECUBE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ICECUBE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ICECUBE_SKYMAP_URL", str(tmp_path / "maps"))
    get_settings.cache_clear()
    yield tmp_path / "maps"
    get_settings.cache_clear()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def _store(folder: Path, event_id: int, kappa: float) -> str:
    table = vmf_skymap(
        np.radians(77.4),
        np.radians(5.7),
        kappa,
        name=f"IceCube-{event_id}",
        time_ns=1_780_000_000_000_000_000,
        event_id=event_id,
    )
    return write_skymap(table, skymap_url(str(folder), event_id))


def test_json_reports_the_stored_map(maps: Path) -> None:
    url = _store(maps, 31, 2e4)
    code, stdout, stderr = _invoke("skymap", "31", "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["url"] == url
    assert (report["ra_deg"], report["dec_deg"]) == (77.4, 5.7)
    assert report["object"] == "IceCube-31" and report["png"] is None
    r90 = vmf_radius(np.float64(2e4), 0.9)
    assert report["area90_deg2"] == pytest.approx(np.pi * np.degrees(r90) ** 2, rel=0.02)
    assert report["area50_deg2"] < report["area90_deg2"]
    assert report["pixels"] > 768


def test_table_and_png(maps: Path, tmp_path: Path) -> None:
    _store(maps, 32, 500.0)
    png = tmp_path / "out" / "map.png"
    code, stdout, stderr = _invoke("skymap", "32", "--png", str(png))
    assert code == 0, stderr
    assert "77.400, +5.700" in stdout and "IceCube-32.multiorder.fits" in stdout
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_missing_map_is_one_red_line_and_exit_1(maps: Path) -> None:
    code, stdout, stderr = _invoke("skymap", "33", "--json")
    assert code == 1
    assert stdout == ""
    expected = (
        f"error: no sky map for event 33 at {maps}/IceCube-33.multiorder.fits "
        "(only alerts have one)"
    )
    assert stderr.strip() == expected
