"""The pulse frame: many events per Kafka message, columnar, so per-message overhead is amortised.

A Faust agent spends on the order of 100 µs of Python per message; one message per event would
use a core before any model work. A frame carries up to `max_events` whole events; an event with
more than `max_pulses` pulses travels alone, split into parts that share its routing key.
Every frame names the geometry identity of its data set, so a model of another detector can
refuse it; frames of the first schema version have none (None: "unknown").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from icecube_stream.wire.codec import AvroCodec, MalformedMessageError
from icecube_stream.wire.reasons import Reason


@dataclass(frozen=True)
class PulseFrame:
    source: str
    emitted_at_ns: int
    event_id: NDArray[np.int64]
    part: NDArray[np.int32]
    n_parts: NDArray[np.int32]
    pulse_count: NDArray[np.int32]
    sensor_id: NDArray[np.int16]
    time: NDArray[np.int64]
    charge: NDArray[np.float32]
    auxiliary: NDArray[np.bool_]
    geometry_id: str | None = None

    @property
    def key(self) -> bytes:
        """Routing key: the first event's id, which for a split event is the event itself."""
        return str(int(self.event_id[0])).encode()

    @property
    def n_events(self) -> int:
        return int(self.event_id.size)

    @property
    def offsets(self) -> NDArray[np.int64]:
        return np.concatenate([[0], np.cumsum(self.pulse_count, dtype=np.int64)])

    def stamped(self, emitted_at_ns: int) -> PulseFrame:
        return replace(self, emitted_at_ns=emitted_at_ns)


def select_events(frame: PulseFrame, which: NDArray[np.bool_] | NDArray[np.intp]) -> PulseFrame:
    """The events where a mask is True, or at the given positions in their order, with their
    pulses."""
    if which.dtype == np.bool_:
        pulses = np.repeat(which, frame.pulse_count)
    else:
        offsets = frame.offsets
        pulses = _ranges(offsets[which], offsets[which + 1])
    return replace(
        frame,
        event_id=frame.event_id[which],
        part=frame.part[which],
        n_parts=frame.n_parts[which],
        pulse_count=frame.pulse_count[which],
        sensor_id=frame.sensor_id[pulses],
        time=frame.time[pulses],
        charge=frame.charge[pulses],
        auxiliary=frame.auxiliary[pulses],
    )


def concat_frames(frames: Sequence[PulseFrame]) -> PulseFrame:
    """Frames of one geometry back to back (source and time from the first): one copy of each
    column, however many frames."""
    if len(frames) == 1:
        return frames[0]
    geometries = {f.geometry_id for f in frames}
    if len(geometries) != 1:
        raise ValueError(f"frames of several geometries: {sorted(map(str, geometries))}")
    return replace(
        frames[0],
        event_id=np.concatenate([f.event_id for f in frames]),
        part=np.concatenate([f.part for f in frames]),
        n_parts=np.concatenate([f.n_parts for f in frames]),
        pulse_count=np.concatenate([f.pulse_count for f in frames]),
        sensor_id=np.concatenate([f.sensor_id for f in frames]),
        time=np.concatenate([f.time for f in frames]),
        charge=np.concatenate([f.charge for f in frames]),
        auxiliary=np.concatenate([f.auxiliary for f in frames]),
    )


def _ranges(starts: NDArray[np.int64], stops: NDArray[np.int64]) -> NDArray[np.int64]:
    """Every index in [start, stop) for each pair, back to back."""
    lengths = stops - starts
    if lengths.size == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(lengths)
    shift: NDArray[np.int64] = np.repeat(starts - (ends - lengths), lengths)
    return np.arange(int(ends[-1]), dtype=np.int64) + shift


def encode_frame(frame: PulseFrame, codec: AvroCodec) -> bytes:
    return codec.encode(
        {
            "source": frame.source,
            "emitted_at_ns": frame.emitted_at_ns,
            "event_id": frame.event_id.tolist(),
            "part": frame.part.tolist(),
            "n_parts": frame.n_parts.tolist(),
            "pulse_count": frame.pulse_count.tolist(),
            "sensor_id": frame.sensor_id.astype("<i2").tobytes(),
            "time": frame.time.astype("<i8").tobytes(),
            "charge": frame.charge.astype("<f4").tobytes(),
            "auxiliary": frame.auxiliary.astype(np.uint8).tobytes(),
            "geometry_id": frame.geometry_id,
        }
    )


def decode_frame(data: bytes, codec: AvroCodec) -> PulseFrame:
    """Decode and check that the arrays agree with each other; MalformedMessage otherwise."""
    record = codec.decode(data)
    frame = PulseFrame(
        source=record["source"],
        emitted_at_ns=record["emitted_at_ns"],
        event_id=np.asarray(record["event_id"], np.int64),
        part=np.asarray(record["part"], np.int32),
        n_parts=np.asarray(record["n_parts"], np.int32),
        pulse_count=np.asarray(record["pulse_count"], np.int32),
        sensor_id=_unpack(record, "sensor_id", "<i2").astype(np.int16),
        time=_unpack(record, "time", "<i8").astype(np.int64),
        charge=_unpack(record, "charge", "<f4").astype(np.float32),
        auxiliary=_flags(_unpack(record, "auxiliary", "u1")),
        geometry_id=record["geometry_id"],
    )
    _check_consistent(frame)
    return frame


def _flags(raw: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """`auxiliary` as booleans; a byte other than 0 or 1 breaks the wire format."""
    if raw.size and raw.max() > 1:
        raise MalformedMessageError(
            Reason.BAD_AUXILIARY, f"auxiliary holds {int(raw.max())}: only 0 and 1 are flags"
        )
    return raw.astype(np.bool_)


def _unpack(record: dict[str, Any], field: str, dtype: str) -> NDArray[Any]:
    raw = record[field]
    if len(raw) % np.dtype(dtype).itemsize:
        raise MalformedMessageError(
            Reason.INCONSISTENT_FRAME, f"{field}: {len(raw)} bytes is not whole {dtype}"
        )
    return np.frombuffer(raw, dtype=dtype)


def _check_consistent(frame: PulseFrame) -> None:
    n = frame.event_id.size
    if n == 0:
        raise MalformedMessageError(Reason.INCONSISTENT_FRAME, "frame holds no events")
    if not frame.part.size == frame.n_parts.size == frame.pulse_count.size == n:
        raise MalformedMessageError(Reason.INCONSISTENT_FRAME, "per-event arrays differ in length")
    pulses = frame.sensor_id.size
    if not frame.time.size == frame.charge.size == frame.auxiliary.size == pulses:
        raise MalformedMessageError(Reason.INCONSISTENT_FRAME, "per-pulse arrays differ in length")
    if (frame.pulse_count < 0).any() or int(frame.pulse_count.sum()) != pulses:
        raise MalformedMessageError(
            Reason.INCONSISTENT_FRAME,
            f"pulse counts add up to {frame.pulse_count.sum()}, not {pulses}",
        )
    if (frame.n_parts < 1).any() or (frame.part < 0).any() or (frame.part >= frame.n_parts).any():
        raise MalformedMessageError(Reason.INCONSISTENT_FRAME, "part index outside 0..n_parts-1")
