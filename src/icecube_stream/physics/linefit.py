"""LineFit: the classic analytic first guess of a muon direction.

Every pulse is treated as a point on a plane wave, r_i = r + v t_i; least squares gives
v = (<r t> - <r><t>) / (<t^2> - <t>^2) per event, and the source direction is -v/|v|. Events are
stored back to back (pulses of event k are rows offsets[k]:offsets[k+1]), so every mean is a
segment sum via np.add.reduceat and thousands of events are fitted with a handful of array
operations instead of a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from icecube_stream.physics.angles import vector_to_angles
from icecube_stream.physics.segments import keep_rows, segment_sum

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: With fewer clean (non-auxiliary) pulses than this, the robust fit falls back to all pulses:
#: a line through three points says less than a noisy line through thirty.
MIN_CLEAN_PULSES = 6


@dataclass(frozen=True)
class LineFitResult:
    """Per-event fit results; `valid` is False where the fit is degenerate (e.g. one time)."""

    azimuth: FloatArray
    zenith: FloatArray
    speed: FloatArray  # |v| in m/ns: ~0.3 for a track, much lower for a cascade
    valid: BoolArray


def linefit(
    positions: FloatArray,
    times: NDArray[np.floating] | NDArray[np.integer],
    offsets: IntArray,
    weights: FloatArray | None = None,
) -> LineFitResult:
    """Fit every event; positions (P, 3) in m, times (P,) in ns, offsets (n_events + 1,)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    pos = np.asarray(positions, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or t.shape != (pos.shape[0],):
        raise ValueError(f"expected positions (P, 3) and times (P,), got {pos.shape}, {t.shape}")
    if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != t.size:
        raise ValueError("offsets must start at 0 and end at the number of pulses")
    w = np.ones_like(t) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights is not None:  # zero-weight rows add nothing to any sum below
        rows, offsets = keep_rows(offsets, w > 0)
        pos, t, w = pos[rows], t[rows], w[rows]
    lengths = np.diff(offsets)
    event_of_pulse = np.repeat(np.arange(lengths.size), lengths)

    w_sum = segment_sum(w, offsets)
    safe_w = np.where(w_sum > 0, w_sum, 1.0)
    t_mean = segment_sum(w * t, offsets) / safe_w
    r_mean = segment_sum(w[:, None] * pos, offsets) / safe_w[:, None]
    # Centre per event before forming second moments: times are ~1e4 ns, so raw t^2 sums
    # would cancel badly in <t^2> - <t>^2.
    dt = t - t_mean[event_of_pulse]
    dr = pos - r_mean[event_of_pulse]
    var_t = segment_sum(w * dt * dt, offsets) / safe_w
    cov_rt = segment_sum((w * dt)[:, None] * dr, offsets) / safe_w[:, None]

    valid = (w_sum > 0) & (var_t > 1e-9)
    velocity = np.zeros_like(cov_rt)
    velocity[valid] = cov_rt[valid] / var_t[valid, None]
    speed = np.linalg.norm(velocity, axis=1)
    valid &= speed > 0
    # Source direction is opposite to the motion; degenerate events point straight up (zen 0)
    # so that callers always get finite angles and can still filter on `valid`.
    source = np.where(valid[:, None], -velocity, np.array([0.0, 0.0, 1.0]))
    azimuth, zenith = vector_to_angles(source)
    return LineFitResult(azimuth=azimuth, zenith=zenith, speed=speed, valid=valid)


def robust_weights(
    auxiliary: BoolArray, offsets: IntArray, min_clean: int = MIN_CLEAN_PULSES
) -> FloatArray:
    """Weights that drop auxiliary pulses in events that keep at least `min_clean` others.

    Auxiliary pulses are mostly noise spread over the whole readout window; they drag the fitted
    speed toward zero and the direction toward random. Events too sparse to afford the cut keep
    everything.
    """
    aux = np.asarray(auxiliary, dtype=bool)
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    clean = (~aux).astype(np.float64)
    n_clean = segment_sum(clean, offsets)
    enough = np.repeat(n_clean >= min_clean, lengths)
    return np.where(enough, clean, 1.0)


def robust_linefit(
    positions: FloatArray,
    times: NDArray[np.floating] | NDArray[np.integer],
    offsets: IntArray,
    auxiliary: BoolArray,
    min_clean: int = MIN_CLEAN_PULSES,
) -> LineFitResult:
    """LineFit on non-auxiliary pulses where enough of them remain, else on all pulses."""
    return linefit(positions, times, offsets, robust_weights(auxiliary, offsets, min_clean))
