"""The one feature builder: event pulses + detector geometry -> per-pulse and per-event arrays.

Training, evaluation and serving all call `build_features`, so a model never sees features
computed one way in training and another way in production. Everything is vectorised over
events stored back to back (pulses of event k are rows offsets[k]:offsets[k+1]).

Pulse selection: a network's cost grows with the pulses it reads, and real events have a long
tail to thousands of pulses (mostly noise), so each event keeps at most `max_pulses`. The ones
that carry direction survive: non-auxiliary (locally coincident, fully digitised) pulses first,
then by charge, then by time. Kept pulses are re-ordered by time, so results do not depend on the
order rows arrived in beyond ties in time.

Normalisation lives here and nowhere else (`FeatureConfig`): positions in units of 500 m (the
detector's half size), times relative to the event's charge-weighted clean-pulse time in units of
3 us, charge as log1p. Per-event summaries include robust LineFit, so the network starts from the
classic first guess and learns the correction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from icecube_stream.events.geometry import Geometry
from icecube_stream.physics.angles import angles_to_vector
from icecube_stream.physics.linefit import LineFitResult, robust_linefit, robust_weights
from icecube_stream.physics.segments import segment_sum
from icecube_stream.physics.vertex import VertexResult, early_vertex

F32 = np.float32
#: Mean arrival delay of scattered light per metre travelled (n_group / c plus the scattering
#: delay of the simulated ice): ~12 ns/m, against 4.5 ns/m for unscattered light.
SCATTERED_NS_PER_M = 12.0

PULSE_FEATURES = (
    "x",
    "y",
    "z",
    "dx",
    "dy",
    "dz",
    "dt",
    "log_charge",
    "auxiliary",
    "high_qe",
    "vx",
    "vy",
    "vz",
    "vertex_distance",
    "vertex_dt",
    "track_along",
    "track_perp",
)
EVENT_FEATURES = (
    "linefit_x",
    "linefit_y",
    "linefit_z",
    "linefit_log_speed",
    "linefit_valid",
    "log_pulses",
    "log_clean_pulses",
    "log_charge",
    "aux_fraction",
    "centre_x",
    "centre_y",
    "centre_z",
    "time_spread",
    "kept_fraction",
    "vertex_x",
    "vertex_y",
    "vertex_z",
    "dipole_x",
    "dipole_y",
    "dipole_z",
    "dipole_strength",
)


class FeatureError(ValueError):
    """Input that cannot be turned into features; the message says which event and why."""


@dataclass(frozen=True)
class FeatureConfig:
    """Selection and normalisation constants; stored with every model so serving matches."""

    max_pulses: int = 64
    position_scale_m: float = 500.0
    relative_scale_m: float = 200.0
    time_scale_ns: float = 3000.0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class PulseFeatures:
    """Kept pulses back to back (`values`, `offsets`) plus one row of `events` per event."""

    values: NDArray[np.float32]  # (kept pulses, len(PULSE_FEATURES))
    offsets: NDArray[np.int64]  # (n_events + 1,)
    events: NDArray[np.float32]  # (n_events, len(EVENT_FEATURES))

    @property
    def n_events(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def lengths(self) -> NDArray[np.int64]:
        return np.diff(self.offsets)

    def pad(self, indices: NDArray[np.int64] | None = None) -> PaddedBatch:
        """Events `indices` (default: all) padded to the longest of them, with a mask."""
        idx = np.arange(self.n_events) if indices is None else np.asarray(indices, np.int64)
        lengths = self.lengths[idx]
        width = int(lengths.max()) if idx.size else 0
        pulses = np.zeros((idx.size, width, self.values.shape[1]), dtype=F32)
        slot = np.arange(width)[None, :]
        mask = slot < lengths[:, None]
        rows = (self.offsets[idx][:, None] + slot)[mask]
        pulses[mask] = self.values[rows]
        return PaddedBatch(pulses=pulses, mask=mask, events=self.events[idx])


@dataclass(frozen=True)
class PaddedBatch:
    """Network input: `mask` is True for real pulses, False for padding."""

    pulses: NDArray[np.float32]  # (n, width, n_pulse_features)
    mask: NDArray[np.bool_]  # (n, width)
    events: NDArray[np.float32]  # (n, n_event_features)

    @property
    def padding_fraction(self) -> float:
        return float(1.0 - self.mask.mean()) if self.mask.size else 0.0


def validate_pulses(
    sensor_id: NDArray[np.integer],
    time: NDArray[np.number],
    charge: NDArray[np.number],
    auxiliary: NDArray[np.bool_],
    offsets: NDArray[np.int64],
    n_sensors: int,
) -> None:
    """Raise FeatureError for input a model must never silently reconstruct."""
    n = sensor_id.shape[0]
    if time.shape != (n,) or charge.shape != (n,) or auxiliary.shape != (n,):
        raise FeatureError(
            f"pulse arrays differ in length: sensor_id {sensor_id.shape}, time {time.shape}, "
            f"charge {charge.shape}, auxiliary {auxiliary.shape}"
        )
    if offsets.ndim != 1 or offsets.size < 2 or offsets[0] != 0 or offsets[-1] != n:
        raise FeatureError("offsets must start at 0, end at the number of pulses, cover >= 1 event")
    lengths = np.diff(offsets)
    if (lengths <= 0).any():
        first = int(np.flatnonzero(lengths <= 0)[0])
        raise FeatureError(f"event {first} of the batch has no pulses (empty event)")
    bad = ~np.isfinite(np.asarray(time, dtype=np.float64)) | ~np.isfinite(
        np.asarray(charge, dtype=np.float64)
    )
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        event = int(np.searchsorted(offsets, row, side="right") - 1)
        raise FeatureError(f"event {event} of the batch has a NaN/inf time or charge (pulse {row})")
    unknown = (sensor_id < 0) | (sensor_id >= n_sensors)
    if unknown.any():
        ids = np.unique(sensor_id[unknown])[:5].tolist()
        raise FeatureError(f"unknown sensor_id(s) {ids}: the geometry has {n_sensors} sensors")


_TIME_BITS = 19  # relative times up to 524 us; later pulses tie (still kept in order)
_CHARGE_BITS = 20  # charge in 0.01 p.e. up to ~10,000 p.e.; brighter pulses tie
_EVENT_SHIFT = 1 + _CHARGE_BITS + _TIME_BITS  # 40: up to 2^23 events per call


def select_pulses(
    time: NDArray[np.number],
    charge: NDArray[np.number],
    auxiliary: NDArray[np.bool_],
    offsets: NDArray[np.int64],
    max_pulses: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Row indices of the kept pulses (grouped by event, time order) and their offsets.

    Priorities are packed into one int64 key per pulse (event | auxiliary | -charge | time) and
    sorted once: a 4-key lexsort was most of the feature builder's time at serving batch sizes.
    """
    lengths = np.diff(offsets)
    if lengths.size >= 1 << (63 - _EVENT_SHIFT):
        raise FeatureError(f"too many events in one call ({lengths.size})")
    event = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    t = np.asarray(time, dtype=np.float64)
    t_min = np.minimum.reduceat(t, offsets[:-1])
    t_rel = np.clip(np.rint(t - t_min[event]), 0, (1 << _TIME_BITS) - 1).astype(np.int64)
    by_time = np.argsort((event << _EVENT_SHIFT) | t_rel, kind="stable").astype(np.int64)
    if int(lengths.max()) <= max_pulses:
        return by_time, offsets.astype(np.int64)
    # Priority order inside each event: clean first, then brightest, then earliest.
    q = np.clip(np.rint(np.asarray(charge, np.float64) * 100.0), 0, (1 << _CHARGE_BITS) - 1)
    dim = ((1 << _CHARGE_BITS) - 1 - q.astype(np.int64)) << _TIME_BITS
    aux = np.asarray(auxiliary, dtype=np.int64) << (_CHARGE_BITS + _TIME_BITS)
    order = np.argsort((event << _EVENT_SHIFT) | aux | dim | t_rel, kind="stable")
    rank = np.arange(event.size) - np.repeat(offsets[:-1], lengths)
    chosen = order[rank < max_pulses]
    keep = np.zeros(event.size, dtype=bool)
    keep[chosen] = True
    kept_rows = by_time[keep[by_time]]
    kept = np.minimum(lengths, max_pulses)
    new_offsets = np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)
    return kept_rows.astype(np.int64), new_offsets


def build_features(
    sensor_id: NDArray[np.integer],
    time: NDArray[np.number],
    charge: NDArray[np.number],
    auxiliary: NDArray[np.bool_],
    offsets: NDArray[np.int64],
    geometry: Geometry,
    config: FeatureConfig | None = None,
    checked: bool = False,
) -> PulseFeatures:
    """Features of every event in the batch; see the module docstring for the choices.
    `checked`: the caller already ran the wire checks (wire.validation), which refuse what
    validate_pulses would, so the model server validates once, not twice."""
    cfg = config or FeatureConfig()
    offsets = np.asarray(offsets, dtype=np.int64)
    sensor_id = np.asarray(sensor_id)
    auxiliary = np.asarray(auxiliary, dtype=bool)
    if not checked:
        validate_pulses(sensor_id, time, charge, auxiliary, offsets, geometry.n_sensors)
    t_all = np.asarray(time, dtype=np.float64)
    q_all = np.asarray(charge, dtype=np.float64)
    pos_all = geometry.positions[sensor_id.astype(np.int64)]
    if not np.isfinite(pos_all).all():
        raise FeatureError("the geometry has NaN/inf positions for sensors in this batch")
    summary = _summarise(pos_all, t_all, q_all, auxiliary, offsets)
    rows, new_offsets = select_pulses(t_all, q_all, auxiliary, offsets, cfg.max_pulses)
    high_qe = geometry.high_qe[sensor_id[rows].astype(np.int64)]
    values = _pulse_values(rows, summary, pos_all, t_all, q_all, auxiliary, high_qe, cfg)
    kept_fraction = np.diff(new_offsets) / np.diff(offsets)
    return PulseFeatures(
        values=values, offsets=new_offsets, events=_event_values(summary, kept_fraction, cfg)
    )


@dataclass(frozen=True)
class _EventSummary:
    """Per-event quantities over all pulses (before selection), and what pulses need of them."""

    event_of: NDArray[np.int64]  # event index of every pulse
    lengths: NDArray[np.int64]
    centre: NDArray[np.float64]  # charge-weighted clean-pulse centre
    dt: NDArray[np.float64]  # every pulse's time minus the charge-weighted clean-pulse time
    time_spread: NDArray[np.float64]
    linefit: LineFitResult
    track: NDArray[np.float64]  # LineFit source direction, zero where the fit is degenerate
    early: VertexResult
    n_clean: NDArray[np.float64]
    total_charge: NDArray[np.float64]


def _summarise(
    pos: NDArray[np.float64],
    t: NDArray[np.float64],
    q: NDArray[np.float64],
    auxiliary: NDArray[np.bool_],
    offsets: NDArray[np.int64],
) -> _EventSummary:
    lengths = np.diff(offsets)
    clean_w = robust_weights(auxiliary, offsets)
    w = clean_w * np.maximum(q, 0.0)
    # An event of only zero-charge pulses falls back to uniform weights.
    w = np.where(np.repeat(segment_sum(w, offsets) > 0, lengths), w, 1.0)
    w_sum = segment_sum(w, offsets)
    centre = segment_sum(w[:, None] * pos, offsets) / w_sum[:, None]
    event_of = np.repeat(np.arange(lengths.size), lengths)
    dt = t - (segment_sum(w * t, offsets) / w_sum)[event_of]
    fit = robust_linefit(pos, t, offsets, auxiliary)
    return _EventSummary(
        event_of=event_of,
        lengths=lengths,
        centre=centre,
        dt=dt,
        time_spread=np.sqrt(segment_sum(w * dt * dt, offsets) / w_sum),
        linefit=fit,
        track=np.where(fit.valid[:, None], angles_to_vector(fit.azimuth, fit.zenith), 0.0),
        early=early_vertex(pos, t, q, offsets, clean_w),
        n_clean=segment_sum((~auxiliary).astype(np.float64), offsets),
        total_charge=segment_sum(q, offsets),
    )


def _pulse_values(
    rows: NDArray[np.int64],
    s: _EventSummary,
    pos_all: NDArray[np.float64],
    t_all: NDArray[np.float64],
    q_all: NDArray[np.float64],
    auxiliary: NDArray[np.bool_],
    high_qe: NDArray[np.bool_],
    cfg: FeatureConfig,
) -> NDArray[np.float32]:
    event = s.event_of[rows]
    pos = pos_all[rows]
    values = np.empty((rows.size, len(PULSE_FEATURES)), dtype=F32)
    values[:, 0:3] = pos / cfg.position_scale_m
    from_centre = pos - s.centre[event]
    values[:, 3:6] = from_centre / cfg.relative_scale_m
    values[:, 6] = s.dt[rows] / cfg.time_scale_ns
    values[:, 7] = np.log1p(np.maximum(q_all[rows], 0.0))
    values[:, 8] = auxiliary[rows]
    values[:, 9] = high_qe
    from_vertex = pos - s.early.vertex[event]
    vertex_distance = np.linalg.norm(from_vertex, axis=1)
    values[:, 10:13] = from_vertex / cfg.relative_scale_m
    values[:, 13] = vertex_distance / cfg.relative_scale_m
    # Time after the first light, less what scattered light needs to cover the distance.
    delay = t_all[rows] - s.early.first_time[event] - SCATTERED_NS_PER_M * vertex_distance
    values[:, 14] = delay / cfg.time_scale_ns
    # Where each pulse sits along and across the LineFit track through the centre.
    track = s.track[event]
    along = np.einsum("ij,ij->i", from_centre, track)
    values[:, 15] = along / cfg.relative_scale_m
    values[:, 16] = np.linalg.norm(from_centre - along[:, None] * track, axis=1)
    values[:, 16] /= cfg.relative_scale_m
    return values


def _event_values(
    s: _EventSummary, kept_fraction: NDArray[np.float64], cfg: FeatureConfig
) -> NDArray[np.float32]:
    events = np.empty((s.lengths.size, len(EVENT_FEATURES)), dtype=F32)
    events[:, 0:3] = s.track
    events[:, 3] = np.log10(np.clip(s.linefit.speed, 1e-3, 10.0))
    events[:, 4] = s.linefit.valid
    events[:, 5] = np.log(s.lengths) / 5.0
    events[:, 6] = np.log1p(s.n_clean) / 5.0
    events[:, 7] = np.log1p(s.total_charge) / 5.0
    events[:, 8] = 1.0 - s.n_clean / s.lengths
    events[:, 9:12] = s.centre / cfg.position_scale_m
    events[:, 12] = s.time_spread / cfg.time_scale_ns
    events[:, 13] = kept_fraction
    events[:, 14:17] = s.early.vertex / cfg.position_scale_m
    events[:, 17:20] = s.early.dipole
    events[:, 20] = s.early.strength
    return events


def features_from_batch(batch: object, config: FeatureConfig | None = None) -> PulseFeatures:
    """`build_features` for an `EventBatch` (typed loosely so serving code need not import it)."""
    from icecube_stream.events.batch import EventBatch

    if not isinstance(batch, EventBatch):
        raise TypeError(f"expected an EventBatch, got {type(batch).__name__}")
    return build_features(
        batch.sensor_id,
        batch.time,
        batch.charge,
        batch.auxiliary,
        batch.offsets,
        batch.geometry,
        config,
    )
