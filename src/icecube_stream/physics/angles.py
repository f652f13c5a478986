"""Direction conventions and the angular metrics everything else is scored with.

Kaggle convention: the unit vector (cos az sin zen, sin az sin zen, cos zen) points to where the
neutrino came FROM. Angular distances use atan2(|u x v|, u . v) rather than arccos(u . v): arccos
loses half the significant digits next to 0 and pi, which is exactly where good reconstructions
(and sign flips) sit.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def angles_to_vector(azimuth: ArrayLike, zenith: ArrayLike) -> FloatArray:
    """Unit vectors with shape (..., 3) for the given azimuth/zenith (radians)."""
    az = np.asarray(azimuth, dtype=np.float64)
    zen = np.asarray(zenith, dtype=np.float64)
    sin_zen = np.sin(zen)
    return np.stack([np.cos(az) * sin_zen, np.sin(az) * sin_zen, np.cos(zen)], axis=-1)


def vector_to_angles(vectors: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Azimuth in [0, 2pi) and zenith in [0, pi] of (not necessarily unit) vectors (..., 3).

    Zenith comes from atan2 of the transverse and longitudinal parts, which stays accurate near
    the poles where arccos(z / |v|) would not.
    """
    v = np.asarray(vectors, dtype=np.float64)
    if v.shape[-1] != 3:
        raise ValueError(f"expected vectors with a last axis of 3, got shape {v.shape}")
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    azimuth = np.mod(np.arctan2(y, x), 2.0 * np.pi)
    # mod can return exactly 2pi for tiny negative inputs; fold that back to 0.
    azimuth = np.where(azimuth >= 2.0 * np.pi, 0.0, azimuth)
    zenith = np.arctan2(np.hypot(x, y), z)
    return azimuth, zenith


def angular_distance(u: ArrayLike, v: ArrayLike) -> FloatArray:
    """Angle in [0, pi] between vectors u and v (..., 3); inputs need not be normalised."""
    a = np.asarray(u, dtype=np.float64)
    b = np.asarray(v, dtype=np.float64)
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    dot = np.sum(a * b, axis=-1)
    return np.asarray(np.arctan2(cross, dot), dtype=np.float64)


def angular_distance_angles(
    azimuth_a: ArrayLike, zenith_a: ArrayLike, azimuth_b: ArrayLike, zenith_b: ArrayLike
) -> FloatArray:
    """Angle between two directions given as azimuth/zenith pairs."""
    return angular_distance(
        angles_to_vector(azimuth_a, zenith_a), angles_to_vector(azimuth_b, zenith_b)
    )


def mean_angular_error(
    azimuth_true: ArrayLike,
    zenith_true: ArrayLike,
    azimuth_pred: ArrayLike,
    zenith_pred: ArrayLike,
) -> float:
    """The Kaggle competition metric: mean opening angle between truth and prediction."""
    errors = angular_distance_angles(azimuth_true, zenith_true, azimuth_pred, zenith_pred)
    if errors.size == 0:
        raise ValueError("mean angular error of zero events is undefined")
    return float(np.mean(errors))
