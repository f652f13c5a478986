from dataclasses import replace

import numpy as np
import pytest

from icecube_stream.stream.framing import frames_from_batch
from icecube_stream.wire.codec import AvroCodec, MalformedMessageError
from icecube_stream.wire.frame import PulseFrame, decode_frame, encode_frame

pytestmark = pytest.mark.unit


def test_frames_respect_event_and_pulse_budgets(make_batch) -> None:
    batch = make_batch([10] * 25 + [50, 5, 5])
    frames = list(frames_from_batch(batch, "b1", max_events=8, max_pulses=60))
    assert [f.n_events for f in frames] == [6, 6, 6, 6, 2, 2]
    assert [int(f.pulse_count.sum()) for f in frames] == [60, 60, 60, 60, 60, 10]
    assert len(list(frames_from_batch(batch, "b1", max_events=8, max_pulses=1000))) == 4
    assert np.concatenate([f.event_id for f in frames]).tolist() == batch.event_id.tolist()
    assert all((f.n_parts == 1).all() for f in frames)


def test_a_large_event_is_split_into_parts_sharing_its_key(make_batch) -> None:
    batch = make_batch([3, 250, 4])
    frames = list(frames_from_batch(batch, "b1", max_events=100, max_pulses=100))
    assert [f.event_id.tolist() for f in frames] == [[1000], [1001], [1001], [1001], [1002]]
    parts = frames[1:4]
    assert [int(f.part[0]) for f in parts] == [0, 1, 2]
    assert {int(f.n_parts[0]) for f in parts} == {3}
    assert [int(f.pulse_count[0]) for f in parts] == [100, 100, 50]
    assert {f.key for f in parts} == {b"1001"}
    joined = np.concatenate([f.time for f in parts])
    assert joined.tolist() == batch.time[3:253].tolist()


def test_encode_decode_round_trip(make_batch, frame_codec: AvroCodec) -> None:
    batch = make_batch([7, 1, 30])
    frame = next(frames_from_batch(batch, "batch_3.parquet", 128, 1000)).stamped(123456789)
    decoded = decode_frame(encode_frame(frame, frame_codec), frame_codec)
    assert decoded.source == "batch_3.parquet"
    assert decoded.emitted_at_ns == 123456789
    for name in ("event_id", "part", "n_parts", "pulse_count", "sensor_id", "time", "auxiliary"):
        assert getattr(decoded, name).tolist() == getattr(frame, name).tolist(), name
    np.testing.assert_allclose(decoded.charge, batch.charge.astype(np.float32))


def corrupt(frame: PulseFrame, **changes: object) -> PulseFrame:
    return replace(frame, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"pulse_count": np.array([5, 1, 30], np.int32)}, "pulse counts add up"),
        ({"part": np.array([0, 0], np.int32)}, "per-event arrays differ"),
        ({"charge": np.ones(3, np.float32)}, "per-pulse arrays differ"),
        ({"part": np.array([0, 1, 0], np.int32)}, "part index outside"),
    ],
)
def test_inconsistent_frames_are_rejected(
    make_batch, frame_codec: AvroCodec, changes: dict[str, object], reason: str
) -> None:
    frame = next(frames_from_batch(make_batch([7, 1, 30]), "b", 128, 1000))
    data = encode_frame(corrupt(frame, **changes), frame_codec)
    with pytest.raises(MalformedMessageError, match=reason) as raised:
        decode_frame(data, frame_codec)
    assert raised.value.reason == "inconsistent-frame"


def test_an_auxiliary_byte_other_than_0_or_1_is_refused(make_batch, frame_codec: AvroCodec) -> None:
    frame = next(frames_from_batch(make_batch([3, 2]), "b", 128, 1000))
    record = frame_codec.decode(encode_frame(frame, frame_codec))
    record["auxiliary"] = bytes([0, 1, 7, 0, 1])
    with pytest.raises(MalformedMessageError, match="holds 7") as raised:
        decode_frame(frame_codec.encode(record), frame_codec)
    assert raised.value.reason == "bad-auxiliary"
