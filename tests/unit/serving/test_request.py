import pickle

import numpy as np
import pytest

from icecube_stream.events.geometry import from_positions, icecube_geometry
from icecube_stream.serving.request import BadRequestError, parse_request
from icecube_stream.wire.codec import AvroCodec
from icecube_stream.wire.frame import encode_frame
from icecube_stream.wire.validation import Limits, check_events

pytestmark = pytest.mark.unit

LIMIT = 1 << 20
OCTETS = "application/octet-stream"
ICECUBE = icecube_geometry()


def _refusal(body: bytes, codec: AvroCodec, content_type: str | None = OCTETS) -> BadRequestError:
    with pytest.raises(BadRequestError) as caught:
        parse_request(body, content_type, codec, ICECUBE, max_body_bytes=LIMIT)
    return caught.value


def test_a_valid_frame_gives_offsets_in_request_order(codec, make_frame) -> None:
    frame = make_frame((5, 9, 3))
    request = parse_request(encode_frame(frame, codec), OCTETS, codec, ICECUBE, LIMIT)
    assert request.event_id.tolist() == [100, 101, 102]
    assert request.offsets.tolist() == [0, 5, 14, 17]
    np.testing.assert_array_equal(request.charge, frame.charge)


@pytest.mark.parametrize("content_type", [None, "application/octet-stream; charset=binary"])
def test_missing_or_parametrised_octet_stream_is_accepted(codec, make_frame, content_type) -> None:
    body = encode_frame(make_frame(), codec)
    assert parse_request(body, content_type, codec, ICECUBE, LIMIT).n_events == 3


def test_not_avro(codec) -> None:
    error = _refusal(b'{"json": true}', codec)
    assert (error.status, error.reason) == (400, "not-avro")


def test_a_pickle_body_sent_as_octets_is_only_ever_avro_decoded(codec, tmp_path) -> None:
    class Exploit:
        def __reduce__(self):  # would create the marker file if unpickled
            return (open, (str(tmp_path / "pwned"), "w"))

    error = _refusal(pickle.dumps(Exploit()), codec)
    assert error.status == 400
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("content_type", ["application/vnd.bentoml+pickle", "application/json"])
def test_other_content_types_are_refused_with_415(codec, make_frame, content_type) -> None:
    error = _refusal(encode_frame(make_frame(), codec), codec, content_type)
    assert error.status == 415
    assert "application/octet-stream" in error.message


def test_wrong_schema_id(codec, make_frame) -> None:
    body = bytearray(encode_frame(make_frame(), codec))
    body[1:5] = (99).to_bytes(4, "big")
    error = _refusal(bytes(body), codec)
    assert error.status == 400
    assert "99" in error.message


def test_truncated_body(codec, make_frame) -> None:
    body = encode_frame(make_frame(), codec)
    assert _refusal(body[: len(body) // 2], codec).status == 400


def test_empty_body_and_too_large_body(codec, make_frame) -> None:
    assert _refusal(b"", codec).reason == "empty-body"
    body = encode_frame(make_frame(), codec)
    with pytest.raises(BadRequestError) as caught:
        parse_request(body, OCTETS, codec, ICECUBE, max_body_bytes=len(body) - 1)
    assert caught.value.status == 413


def test_empty_batch(codec, make_frame) -> None:
    frame = make_frame(
        (),
        sensor_id=np.zeros(0, np.int16),
        time=np.zeros(0, np.int64),
        charge=np.zeros(0, np.float32),
        auxiliary=np.zeros(0, np.bool_),
    )
    error = _refusal(encode_frame(frame, codec), codec)
    assert error.status == 400
    assert "no events" in error.message


def test_wrong_shapes(codec, make_frame) -> None:
    frame = make_frame((4, 3), charge=np.ones(6, np.float32))  # 7 pulses, 6 charges
    error = _refusal(encode_frame(frame, codec), codec)
    assert error.status == 400 and "differ in length" in error.message


@pytest.mark.parametrize(
    ("change", "reason", "says"),
    [
        (lambda f: f.charge.__setitem__(5, np.nan), "non-finite", "NaN or infinite"),
        (lambda f: f.charge.__setitem__(5, -np.inf), "non-finite", "NaN or infinite"),
        (lambda f: f.charge.__setitem__(5, -1.0), "negative-charge", "negative charge"),
        (lambda f: f.sensor_id.__setitem__(5, 5160), "unknown-sensor", "5160"),
        (lambda f: f.time.__setitem__(5, np.iinfo(np.int64).max), "time-out-of-range", "beyond"),
        (lambda f: f.time.__setitem__(5, 5_000_000), "event-too-long", "spans"),
        (lambda f: f.event_id.__setitem__(2, f.event_id[1]), "duplicate-event-id", "more than"),
    ],
)  # fmt: skip
def test_a_bad_event_is_refused_by_name_and_only_it(codec, make_frame, change, reason, says):
    frame = make_frame((4, 3, 2))
    change(frame)
    request = parse_request(encode_frame(frame, codec), OCTETS, codec, ICECUBE, LIMIT)
    refused = check_events(request, Limits(ICECUBE.n_sensors, 1000)).problems
    (problem,) = [p for p in refused if p.index == 1]
    assert problem.reason == reason and says in problem.detail
    assert f"event {frame.event_id[1]}" in problem.detail
    assert 0 not in {p.index for p in refused}


def test_an_event_without_pulses_is_refused_by_name(codec, make_frame) -> None:
    request = parse_request(encode_frame(make_frame((4, 0, 3)), codec), OCTETS, codec, ICECUBE,
                            LIMIT)  # fmt: skip
    (problem,) = check_events(request, Limits(ICECUBE.n_sensors, 1000)).problems
    assert (problem.index, problem.reason) == (1, "empty-event")


def test_split_events_are_refused(codec, make_frame) -> None:
    frame = make_frame((4,), n_parts=np.array([2], np.int32))
    error = _refusal(encode_frame(frame, codec), codec)
    assert error.reason == "split-event" and "whole events" in error.message


def test_a_frame_of_another_geometry_gets_a_typed_rejection(codec, make_frame) -> None:
    shifted = from_positions(ICECUBE.positions + np.array([0.0, 0.0, 1.0]))
    frame = make_frame(geometry_id=shifted.identity)
    error = _refusal(encode_frame(frame, codec), codec)
    assert (error.status, error.reason) == (409, "geometry-mismatch")
    assert error.rejection is not None
    assert error.rejection.as_json() == {
        "reason": "geometry-mismatch",
        "frame_geometry": shifted.identity,
        "model_geometry": ICECUBE.identity,
    }
    assert "replay" in error.message


@pytest.mark.parametrize("geometry_id", [None, ICECUBE.identity])
def test_frames_of_the_model_geometry_or_of_unknown_geometry_are_served(
    codec, make_frame, geometry_id
) -> None:
    body = encode_frame(make_frame(geometry_id=geometry_id), codec)
    assert parse_request(body, OCTETS, codec, ICECUBE, LIMIT).geometry_id == geometry_id
