"""Per-event reductions over events stored back to back (event k is rows offsets[k]:offsets[k+1]).

np.add.reduceat does the work, but it returns the row itself for an empty segment instead of
the identity; these wrappers give 0 (sum) and +inf (min) there, so callers need no special cases.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def segment_sum(values: NDArray[np.floating], offsets: IntArray) -> FloatArray:
    """Sum of values (P, ...) over each segment; empty segments give 0."""
    out = np.zeros((offsets.size - 1, *values.shape[1:]), dtype=np.float64)
    nonempty = np.diff(offsets) > 0
    if values.shape[0] and nonempty.any():
        out[nonempty] = np.add.reduceat(values, offsets[:-1][nonempty], axis=0)
    return out


def segment_min(values: NDArray[np.floating], offsets: IntArray) -> FloatArray:
    """Minimum of values (P,) over each segment; empty segments give +inf."""
    out = np.full(offsets.size - 1, np.inf)
    nonempty = np.diff(offsets) > 0
    if values.shape[0] and nonempty.any():
        out[nonempty] = np.minimum.reduceat(values, offsets[:-1][nonempty])
    return out


def keep_rows(offsets: IntArray, keep: NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
    """Rows where `keep` is True and their offsets, event by event (an event may end up empty).

    Weighted fits use it to skip zero-weight rows: most pulses are auxiliary noise.
    """
    counts = segment_sum(keep.astype(np.float64), offsets).astype(np.int64)
    return np.flatnonzero(keep), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
