"""Detector geometry: an IceCube-like layout generated from first principles, or a real CSV.

The generated layout follows the published design (78 strings on a 125 m triangular grid, 60
DOMs at 17 m, 8 DeepCore strings with 10 veto DOMs above the dust layer and 50 DOMs at 7 m in the
clear deep ice) and the Kaggle numbering (sensor_id = 60 * string + DOM, top to bottom), so code
written against it runs unchanged on the real sensor_geometry.csv.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

DOMS_PER_STRING = 60
N_STANDARD_STRINGS = 78
N_DEEPCORE_STRINGS = 8
STRING_SPACING_M = 125.0
DOM_SPACING_M = 17.0
TOP_DOM_Z_M = 500.0
#: Strings per grid row of the real array, listed from the southern edge; the last row is short,
#: which is why IceCube has 78 standard strings rather than a full hexagon.
ROW_LENGTHS = (6, 7, 8, 9, 10, 10, 9, 8, 7, 4)
#: Grid orientation of the real array (degrees), read off the public geometry.
GRID_ANGLE_DEG = 9.0


@dataclass(frozen=True)
class Geometry:
    """Sensor positions (metres, detector frame) plus the string/DOM structure derived from them."""

    positions: NDArray[np.float64]  # (n_sensors, 3)
    string: NDArray[np.int64]  # string index per sensor
    dom: NDArray[np.int64]  # position along the string, 0 = top
    high_qe: NDArray[np.bool_]  # DeepCore high-quantum-efficiency PMTs

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


def _standard_string_xy() -> NDArray[np.float64]:
    angle = np.deg2rad(GRID_ANGLE_DEG)
    step_in_row = STRING_SPACING_M * np.array([np.cos(angle), np.sin(angle)])
    step_row = STRING_SPACING_M * np.array(
        [np.cos(angle + 2 * np.pi / 3), np.sin(angle + 2 * np.pi / 3)]
    )
    widest = max(ROW_LENGTHS)
    points: list[NDArray[np.float64]] = []
    widest_row = ROW_LENGTHS.index(widest)
    for row, length in enumerate(ROW_LENGTHS):
        # Rows grow by one string up to the widest, then the hexagon's far side shrinks: its
        # first string moves one step along the row each time.
        shift = max(0, row - widest_row)
        for k in range(length):
            points.append((k + shift) * step_in_row + row * step_row)
    xy = np.array(points)
    return np.asarray(xy - xy.mean(axis=0), dtype=np.float64)


def _deepcore_string_xy(centre: NDArray[np.float64]) -> NDArray[np.float64]:
    """Six strings on a 72 m hexagon around the central string plus two at ~41 m inside it."""
    outer = [
        centre + 72.0 * np.array([np.cos(a), np.sin(a)])
        for a in np.deg2rad(np.arange(6) * 60.0 + 30.0)
    ]
    inner = [centre + 41.0 * np.array([np.cos(a), np.sin(a)]) for a in np.deg2rad([200.0, 320.0])]
    return np.array(outer + inner)


def _deepcore_dom_z() -> NDArray[np.float64]:
    veto = 189.5 - 10.0 * np.arange(10)
    deep = -157.9 - 7.0 * np.arange(50)
    return np.concatenate([veto, deep])


def generate_geometry() -> Geometry:
    """The project's own IceCube-like geometry (5160 sensors)."""
    standard = _standard_string_xy()
    centre = standard[np.argmin(np.linalg.norm(standard, axis=1))]
    deepcore = _deepcore_string_xy(centre)
    standard_z = TOP_DOM_Z_M - DOM_SPACING_M * np.arange(DOMS_PER_STRING)
    deepcore_z = _deepcore_dom_z()
    rows = []
    for xy in standard:
        rows.append(
            np.column_stack(
                [np.full(DOMS_PER_STRING, xy[0]), np.full(DOMS_PER_STRING, xy[1]), standard_z]
            )
        )
    for xy in deepcore:
        rows.append(
            np.column_stack(
                [np.full(DOMS_PER_STRING, xy[0]), np.full(DOMS_PER_STRING, xy[1]), deepcore_z]
            )
        )
    positions = np.round(np.vstack(rows), 2)
    return from_positions(positions)


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


def load_geometry(path: str | Path | None) -> Geometry:
    """A real sensor_geometry.csv when a path is given, otherwise the generated layout."""
    if path is None:
        return generate_geometry()
    from icecube_stream.events.format import read_geometry_csv

    return from_positions(read_geometry_csv(Path(path)))
