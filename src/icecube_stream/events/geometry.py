"""Detector geometry: IceCube's measured sensor positions by default, and the geometry identity.

The real positions ship with the package (`icecube_sensor_geometry.csv`, the Kaggle
`sensor_geometry.csv` byte for byte, SHA-256 below): a model that learned sensor positions must
see the detector the data came from, and a generated look-alike differs from it by 14 m on
average and up to 159 m. The identity is a hash of the positions rounded to centimetres, so it
does not depend on how a CSV formats its numbers; models, data sets and frames carry it, and a
mismatch is refused with `describe_mismatch`'s explanation. The CSV reader and writer live here
too: a geometry is what they read and write.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

from icecube_stream.events.layout import GEOMETRY_SCHEMA, EventDataError, check_schema

DOMS_PER_STRING = 60
N_STANDARD_STRINGS = 78
#: The shipped file: the Kaggle data set's sensor_geometry.csv, unchanged.
ICECUBE_GEOMETRY_FILE = "icecube_sensor_geometry.csv"
ICECUBE_GEOMETRY_SHA256 = "67f064e3c68a0d9953506b8d331dbed73f5732effd734a5592155d8d289e4978"
#: The identity of those positions (see `geometry_identity`).
ICECUBE_GEOMETRY_ID = "a401ce554e0faabb"


def geometry_identity(positions: NDArray[np.float64]) -> str:
    """16 hex digits of the SHA-256 of the positions in whole centimetres (int64, row-major)."""
    centimetres = np.rint(np.asarray(positions, dtype=np.float64) * 100.0).astype("<i8")
    digest = hashlib.sha256(str(centimetres.shape).encode() + centimetres.tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Geometry:
    """Sensor positions (metres, detector frame) plus the string/DOM structure derived from them."""

    positions: NDArray[np.float64]  # (n_sensors, 3)
    string: NDArray[np.int64]  # string index per sensor
    dom: NDArray[np.int64]  # position along the string, 0 = top
    high_qe: NDArray[np.bool_]  # DeepCore high-quantum-efficiency PMTs
    identity: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "identity", geometry_identity(self.positions))

    @property
    def n_sensors(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_strings(self) -> int:
        return int(self.string.max()) + 1 if self.string.size else 0

    def string_positions(self) -> NDArray[np.float64]:
        """(n_strings, 2) mean x, y of each string."""
        xy = np.zeros((self.n_strings, 2))
        counts = np.bincount(self.string, minlength=self.n_strings).astype(np.float64)
        for axis in range(2):
            xy[:, axis] = np.bincount(self.string, self.positions[:, axis], self.n_strings)
        return xy / counts[:, None]


def from_positions(positions: NDArray[np.float64]) -> Geometry:
    """Derive string/DOM structure from positions ordered the Kaggle way (60 DOMs per string)."""
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] == 0:
        raise ValueError(f"sensor positions must have shape (n, 3) with n > 0, got {pos.shape}")
    n = pos.shape[0]
    if n % DOMS_PER_STRING == 0:
        index = np.arange(n, dtype=np.int64)
        string = index // DOMS_PER_STRING
        dom = index % DOMS_PER_STRING
    else:
        # Not the Kaggle numbering: group sensors by their (x, y) to recover the strings.
        keys = np.round(pos[:, :2], 0)
        _, string = np.unique(keys, axis=0, return_inverse=True)
        string = string.astype(np.int64).ravel()
        order = np.lexsort((-pos[:, 2], string))
        dom = np.empty(n, dtype=np.int64)
        starts = np.searchsorted(string[order], np.arange(string.max() + 1))
        dom[order] = np.arange(n) - np.repeat(starts, np.bincount(string))
    high_qe = string >= N_STANDARD_STRINGS
    return Geometry(positions=pos, string=string, dom=dom, high_qe=high_qe)


def read_geometry_csv(path: Path) -> NDArray[np.float64]:
    """Positions (n, 3) indexed by sensor_id; ids must be exactly 0..n-1."""
    if not path.is_file():
        raise EventDataError(path, "geometry file not found")
    frame = pl.read_csv(path)
    # CSV carries no dtypes: whole-number coordinates are read as integers and are fine.
    frame = frame.with_columns(
        [
            pl.col(c).cast(pl.Float64)
            for c in ("x", "y", "z")
            if frame.schema.get(c, pl.Null).is_integer()
        ]
    )
    check_schema(path, frame.schema, GEOMETRY_SCHEMA)
    if frame.height == 0:
        raise EventDataError(path, "geometry file has no sensors")
    frame = frame.sort("sensor_id")
    ids = frame["sensor_id"].to_numpy()
    if not np.array_equal(ids, np.arange(frame.height)):
        raise EventDataError(path, "sensor_id must run 0..n-1 without gaps or repeats")
    return frame.select("x", "y", "z").to_numpy().astype(np.float64)


def write_geometry_csv(geometry: Geometry, path: Path) -> None:
    pos = geometry.positions
    pl.DataFrame(
        {
            "sensor_id": np.arange(geometry.n_sensors, dtype=np.int64),
            "x": pos[:, 0],
            "y": pos[:, 1],
            "z": pos[:, 2],
        }
    ).write_csv(path)


def icecube_geometry_path() -> Path:
    return Path(str(resources.files("icecube_stream.events") / ICECUBE_GEOMETRY_FILE))


@cache
def icecube_geometry() -> Geometry:
    """IceCube's 5,160 in-ice sensors as the Kaggle data publishes them."""
    return from_positions(read_geometry_csv(icecube_geometry_path()))


def load_geometry(path: str | Path | None) -> Geometry:
    """A sensor_geometry.csv when a path is given, otherwise IceCube's."""
    if path is None:
        return icecube_geometry()
    return from_positions(read_geometry_csv(Path(path)))


def geometry_name(identity: str | None) -> str:
    """The identity, with a word for the one everybody means."""
    if identity is None:
        return "unknown"
    return f"{identity} (IceCube)" if identity == ICECUBE_GEOMETRY_ID else identity


class GeometryMismatchError(ValueError):
    """Data of one detector met a model or setting of another: sensors would be misplaced."""


def require_same_geometry(expected: Geometry, actual: Geometry, what: str, fix: str) -> None:
    """Raise GeometryMismatchError naming both identities, the worst sensor and the fix."""
    if actual.identity != expected.identity:
        raise GeometryMismatchError(
            f"{what} has geometry {geometry_name(actual.identity)}, not "
            f"{geometry_name(expected.identity)}: {describe_mismatch(expected, actual)}. {fix}"
        )


def describe_mismatch(expected: Geometry, actual: Geometry) -> str:
    """Where the positions differ most, in words an operator can act on."""
    if expected.n_sensors != actual.n_sensors:
        return f"{actual.n_sensors} sensors instead of {expected.n_sensors}"
    distance = np.linalg.norm(actual.positions - expected.positions, axis=1)
    worst = int(np.argmax(distance))
    return (
        f"{int((distance >= 0.005).sum())} of {expected.n_sensors} sensors moved, "
        f"mean {distance.mean():.2f} m, largest {distance[worst]:.2f} m at sensor {worst} "
        f"({_xyz(actual.positions[worst])} instead of {_xyz(expected.positions[worst])})"
    )


def _xyz(position: NDArray[np.float64]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in position) + ") m"
