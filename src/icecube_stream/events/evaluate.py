"""Scoring a direction reconstructor against the truth of a data set.

A reconstructor is any callable taking an `EventBatch` and returning (azimuth, zenith) arrays,
one entry per event. LineFit is one; a trained model (champion, an MLflow URI) plugs in as
another by wrapping its predict call the same way, so evaluation, metrics and the CLI do not
change when models do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.events.batch import EventBatch
from icecube_stream.physics.angles import angular_distance_angles
from icecube_stream.physics.linefit import robust_linefit

Directions = tuple[NDArray[np.float64], NDArray[np.float64]]
Reconstructor = Callable[[EventBatch], Directions]


def linefit_reconstructor(batch: EventBatch) -> Directions:
    """Robust LineFit (auxiliary pulses dropped where enough clean ones remain)."""
    result = robust_linefit(batch.positions, batch.time, batch.offsets, batch.auxiliary)
    return result.azimuth, result.zenith


RECONSTRUCTORS: dict[str, Reconstructor] = {"linefit": linefit_reconstructor}


def get_reconstructor(name: str) -> Reconstructor:
    try:
        return RECONSTRUCTORS[name]
    except KeyError:
        known = ", ".join(sorted(RECONSTRUCTORS))
        raise ValueError(f"unknown model {name!r}; available here: {known}") from None


#: Events whose predicted and true directions an Evaluation keeps, for a sky plot: the first
#: ones, so memory stays bounded however large the data set.
SAMPLE_EVENTS = 300


@dataclass(frozen=True)
class DirectionSample:
    """Predicted and true (azimuth, zenith) in radians of the first events evaluated."""

    azimuth: NDArray[np.float64]
    zenith: NDArray[np.float64]
    true_azimuth: NDArray[np.float64]
    true_zenith: NDArray[np.float64]


@dataclass(frozen=True)
class Evaluation:
    """Angular errors per event plus what the figures need: event types (when the data set has
    them), pulse counts, a baseline's errors on the same events (when asked) and a sample of
    directions."""

    errors: NDArray[np.float64]
    event_types: NDArray[Any] | None
    pulse_counts: NDArray[np.int64]
    baseline_errors: NDArray[np.float64] | None = None
    sample: DirectionSample | None = None

    def summary(self) -> dict[str, Any]:
        """The `evaluate --json` object: overall figures plus the same per event type."""
        out: dict[str, Any] = _figures(self.errors)
        per_type: dict[str, dict[str, Any]] = {}
        if self.event_types is not None:
            for name in sorted({str(t) for t in self.event_types}):
                per_type[name] = _figures(self.errors[self.event_types == name])
        out["per_type"] = per_type
        return out


def _figures(errors: NDArray[np.float64]) -> dict[str, Any]:
    """Count, mean and median of the angular errors; the keys say the unit (radians)."""
    if errors.size == 0:
        return {"n_events": 0, "mean_angular_error_rad": None, "median_angular_error_rad": None}
    return {
        "n_events": int(errors.size),
        "mean_angular_error_rad": float(np.mean(errors)),
        "median_angular_error_rad": float(np.median(errors)),
    }


def evaluate(
    batches: Iterable[EventBatch],
    reconstructor: Reconstructor,
    on_batch: Callable[[int], None] | None = None,
    baseline: Reconstructor | None = None,
    sample_events: int = SAMPLE_EVENTS,
) -> Evaluation:
    """Run the reconstructor batch by batch and collect angular errors against truth; with a
    baseline (LineFit for a model), score it on the same events so figures can compare."""
    errors: list[NDArray[np.float64]] = []
    baseline_errors: list[NDArray[np.float64]] = []
    types: list[NDArray[Any]] = []
    counts: list[NDArray[np.int64]] = []
    sample: list[tuple[NDArray[np.float64], ...]] = []
    kept = 0
    typed = True
    for batch in batches:
        if batch.azimuth is None or batch.zenith is None:
            raise ValueError("the data set has no truth (azimuth/zenith) to evaluate against")
        azimuth, zenith = _directions(reconstructor, batch)
        errors.append(angular_distance_angles(batch.azimuth, batch.zenith, azimuth, zenith))
        if baseline is not None:
            base_az, base_zen = _directions(baseline, batch)
            baseline_errors.append(
                angular_distance_angles(batch.azimuth, batch.zenith, base_az, base_zen)
            )
        counts.append(batch.pulse_counts.astype(np.int64))
        if kept < sample_events:
            take = slice(0, sample_events - kept)
            sample.append((azimuth[take], zenith[take], batch.azimuth[take], batch.zenith[take]))
            kept += sample[-1][0].size
        event_type = batch.extra.get("event_type")
        typed = typed and event_type is not None
        if event_type is not None:
            types.append(np.asarray(event_type).astype(str))
        if on_batch is not None:
            on_batch(batch.n_events)
    return Evaluation(
        errors=_joined(errors, np.float64),
        event_types=np.concatenate(types) if typed and types else None,
        pulse_counts=_joined(counts, np.int64),
        baseline_errors=_joined(baseline_errors, np.float64) if baseline is not None else None,
        sample=_sample(sample),
    )


def _directions(reconstructor: Reconstructor, batch: EventBatch) -> Directions:
    azimuth, zenith = reconstructor(batch)
    if azimuth.shape != (batch.n_events,) or zenith.shape != (batch.n_events,):
        raise ValueError(
            f"reconstructor returned {azimuth.shape}/{zenith.shape} for {batch.n_events} events"
        )
    return azimuth, zenith


def _sample(parts: list[tuple[NDArray[np.float64], ...]]) -> DirectionSample | None:
    """(predicted az, zen, true az, zen) per batch -> one DirectionSample."""
    if not parts:
        return None
    azimuth, zenith, true_azimuth, true_zenith = (
        np.concatenate(c) for c in zip(*parts, strict=True)
    )
    return DirectionSample(azimuth, zenith, true_azimuth, true_zenith)


def _joined(parts: list[NDArray[Any]], dtype: type[np.generic]) -> NDArray[Any]:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)
