"""A corpus of bad raw messages, each with what the pipeline must make of it.

`icecube-stream chaos` writes them straight to the raw topic between good events. Every message
that cannot be served must land in the dead-letter topic exactly once, with its reason; the few
that are odd but servable (a huge `n_parts`, a 1 MB `source`, a null key) must be predicted.
Pure construction, no I/O: the caller sends each `value` with its `key` to its `partition`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.stream.framing import frames_from_batch
from icecube_stream.wire.codec import AvroCodec
from icecube_stream.wire.frame import PulseFrame, encode_frame

PREDICTED = "predicted"  # odd but servable: its events must be predicted
INCOMPLETE = "predicted incomplete"  # a split event whose other parts never come


@dataclass(frozen=True)
class Poison:
    kind: str
    value: bytes
    expected: str  # a dead-letter reason, PREDICTED or INCOMPLETE
    event_ids: tuple[int, ...] = ()  # the events that must be predicted
    partition: int = 0  # parts of one event must share a partition; one case splits them
    keyless: bool = False
    after_s: float = 0.0  # wait this long after the message before it

    def key(self, number: int) -> bytes | None:
        """Unique per message, so its DLQ record (which keeps the key) is found exactly."""
        return None if self.keyless else f"poison-{number}".encode()


class _Maker:
    """Frames of real events under fresh ids, and their Avro records to break."""

    def __init__(self, batch: EventBatch, codec: AvroCodec, first_id: int) -> None:
        self.batch, self.codec = batch, codec
        self.ids: Iterator[int] = iter(range(first_id, first_id + 10_000))
        self.big = int(np.argmax(batch.pulse_counts))

    def frame(self, n_events: int = 2) -> PulseFrame:
        picked = take_events(self.batch, 0, n_events)
        picked = replace(picked, event_id=np.array([next(self.ids) for _ in range(n_events)]))
        return next(frames_from_batch(picked, "poison", n_events, 1 << 20))

    def parts(self) -> list[PulseFrame]:
        """One event split in two messages."""
        big = take_events(self.batch, self.big, self.big + 1)
        big = replace(big, event_id=np.array([next(self.ids)]))
        return list(frames_from_batch(big, "poison", 1, big.n_pulses // 2 + 1))

    def encode(self, frame: PulseFrame) -> bytes:
        return encode_frame(frame, self.codec)

    def record(self, **changes: Any) -> bytes:
        """A frame whose Avro record is changed after encoding: what no emitter would write."""
        record = self.codec.decode(self.encode(self.frame()))
        return self.codec.encode({**record, **changes})

    def pulse(self, field: str, value: Any) -> bytes:
        """A frame whose first pulse has `field` set to value."""
        frame = self.frame()
        values = getattr(frame, field).copy()
        values[0] = value
        return self.encode(replace(frame, **{field: values}))


def corpus(
    batch: EventBatch, codec: AvroCodec, first_id: int, size_limit: int, assembly_timeout_s: float
) -> list[Poison]:
    """At least 25 kinds of bad input, built from real events (batch needs an event of at
    least two pulses) with fresh ids counted from first_id."""
    m = _Maker(batch, codec, first_id)
    good = m.encode(m.frame())
    no_events: dict[str, list[int]] = {
        k: [] for k in ("event_id", "part", "n_parts", "pulse_count")
    }
    no_pulses = {k: b"" for k in ("sensor_id", "time", "charge", "auxiliary")}
    aux = bytearray(codec.decode(good)["auxiliary"])
    aux[0] = 7
    duplicate = m.frame()
    duplicate.event_id[1] = duplicate.event_id[0]
    int64 = np.iinfo(np.int64)
    poisons = [
        Poison("bytes that are not Avro", b"hello, not a frame", "not-avro"),
        Poison("a pickle", pickle.dumps({"event_id": 1}), "not-avro"),
        Poison("an empty value", b"", "not-avro"),
        Poison("an unknown schema id", good[:1] + (4242).to_bytes(4, "big") + good[5:],
               "unknown-schema"),
        Poison("a truncated body", good[: len(good) // 2], "corrupt-body"),
        Poison("per-event arrays of different lengths", m.record(part=[0]), "inconsistent-frame"),
        Poison("per-pulse arrays of different lengths", m.record(charge=b"\0\0\x80?"),
               "inconsistent-frame"),
        Poison("pulse counts that do not add up", m.record(pulse_count=[1, 1]),
               "inconsistent-frame"),
        Poison("a part index past n_parts", m.record(part=[3, 0]), "inconsistent-frame"),
        Poison("time bytes that are not whole int64", m.record(time=b"\1" * 7),
               "inconsistent-frame"),
        Poison("a frame of 0 events", m.record(**no_events, **no_pulses), "inconsistent-frame"),
        Poison("an auxiliary byte of 7", m.record(auxiliary=bytes(aux)), "bad-auxiliary"),
        Poison("an unknown sensor id", m.pulse("sensor_id", 9999), "unknown-sensor"),
        Poison("a NaN charge", m.pulse("charge", np.nan), "non-finite"),
        Poison("an infinite charge", m.pulse("charge", np.inf), "non-finite"),
        Poison("a negative charge", m.pulse("charge", -1.0), "negative-charge"),
        Poison("a time of int64 max", m.pulse("time", int64.max), "time-out-of-range"),
        Poison("a time of int64 min", m.pulse("time", int64.min), "time-out-of-range"),
        Poison("an event spanning 5 ms", m.pulse("time", -5_000_000), "event-too-long"),
        Poison("events of no pulses", m.record(pulse_count=[0, 0], **no_pulses), "empty-event"),
        Poison("one event id twice in a frame", m.encode(duplicate), "duplicate-event-id"),
        Poison("a value near the size limit", b"\x80" * (size_limit - 4096), "not-avro"),
    ]  # fmt: skip
    return poisons + _assembly(m, assembly_timeout_s)


def _assembly(m: _Maker, timeout_s: float) -> list[Poison]:
    """Parts that cannot make an event, and odd messages that must still be served."""
    ids: Callable[[PulseFrame], tuple[int, ...]] = lambda f: tuple(int(e) for e in f.event_id)  # noqa: E731
    disagree, late, reused, across = m.parts(), m.parts(), m.parts(), m.parts()
    liar = replace(disagree[1], n_parts=np.array([3], np.int32))
    other_pulses = replace(reused[0], time=reused[0].time + 3)
    huge = replace(m.parts()[0], n_parts=np.array([1 << 30], np.int32))
    wordy = replace(m.frame(), source="x" * (1 << 20))
    keyless = m.frame()
    return [
        Poison("parts disagreeing on n_parts (first)", m.encode(disagree[0]), "parts-disagree"),
        Poison("parts disagreeing on n_parts (second)", m.encode(liar), "parts-disagree"),
        Poison("a part whose event then times out", m.encode(late[0]), INCOMPLETE, ids(late[0])),
        Poison("the event's other part, too late", m.encode(late[1]), "late-part",
               after_s=timeout_s + 1.5),  # the worker expires events once a second
        Poison("a split event's first part", m.encode(reused[0]), PREDICTED),
        Poison("the same id and part with other pulses", m.encode(other_pulses),
               "event-id-reused"),
        Poison("the split event's last part", m.encode(reused[1]), PREDICTED, ids(reused[0])),
        Poison("part 0 of an event on partition 0", m.encode(across[0]),
               "parts-across-partitions"),
        Poison("its part 1 on partition 1", m.encode(across[1]), "parts-across-partitions",
               partition=1),
        Poison("a huge n_parts", m.encode(huge), INCOMPLETE, ids(huge)),
        Poison("a 1 MB source string", m.encode(wordy), PREDICTED, ids(wordy)),
        Poison("a null key", m.encode(keyless), PREDICTED, ids(keyless), keyless=True),
    ]  # fmt: skip
