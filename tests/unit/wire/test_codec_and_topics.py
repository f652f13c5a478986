import struct
from pathlib import Path

import pytest

from icecube_stream.config import Settings
from icecube_stream.wire.codec import MalformedMessageError
from icecube_stream.wire.reasons import Reason
from icecube_stream.wire.topics import (
    ALERTS,
    DLQ,
    PREDICTIONS,
    PULSES,
    TOPICS_DIR,
    load_topics,
    topic_codec,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def specs():  # type: ignore[no-untyped-def]
    return load_topics(Settings().topics_dir)


def test_the_declarations_ship_with_the_package_and_the_checkout_links_to_them() -> None:
    assert Settings().topics_dir == TOPICS_DIR
    checkout = Path(__file__).resolve().parents[3] / "topics"
    assert checkout.resolve() == TOPICS_DIR.resolve()


def test_one_codec_per_topic() -> None:
    assert topic_codec(PULSES) is topic_codec(PULSES)
    with pytest.raises(ValueError, match="no Avro value schema"):
        topic_codec(DLQ)


def test_every_reason_code_is_a_distinct_lowercase_label() -> None:
    assert len({str(r) for r in Reason}) == len(Reason)
    assert all(str(r) == r.value and r.value == r.value.lower() for r in Reason)


def test_every_topic_the_code_names_is_declared(specs) -> None:  # type: ignore[no-untyped-def]
    assert set(specs) == {PULSES, PREDICTIONS, DLQ, ALERTS}
    assert specs[PULSES].partitions >= 6
    assert specs[PULSES].value_schema_id != specs[PREDICTIONS].value_schema_id
    assert specs[DLQ].value_schema is None
    assert specs[ALERTS].value_schema is None and specs[ALERTS].json_schema is not None


def prediction() -> dict[str, object]:
    return {
        "event_id": 42, "azimuth": 1.0, "zenith": 2.0, "x": 0.1, "y": 0.2, "z": 0.3,
        "angular_uncertainty": 0.4, "model_name": "m", "model_version": "3", "n_pulses": 60,
        "emitted_at_ns": 1, "assembled_at_ns": 2, "predicted_at_ns": 3, "event_time_ns": 1,
        "event_time_source": "emitted", "ra": 0.5, "dec": -0.25, "track_probability": None,
        "charge": 812.5, "flags": ["incomplete"],
    }  # fmt: skip


def test_prediction_round_trip_with_confluent_style_header(specs) -> None:  # type: ignore[no-untyped-def]
    codec = topic_codec(PREDICTIONS)
    data = codec.encode(prediction())
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5])[0] == specs[PREDICTIONS].value_schema_id
    assert codec.decode(data) == prediction()


def test_a_first_version_prediction_reads_with_unknown_new_fields(specs) -> None:  # type: ignore[no-untyped-def]
    codec = topic_codec(PREDICTIONS)
    (old_id,) = specs[PREDICTIONS].readable_schemas
    new_fields = ("event_time_ns", "event_time_source", "ra", "dec", "track_probability", "charge")
    old = {k: v for k, v in prediction().items() if k not in new_fields}
    assert codec.decode(codec.encode_as(old_id, old)) == old | dict.fromkeys(new_fields)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda d: b"\x80\x04\x95" + d, "not-avro"),  # a pickle's opening bytes
        (lambda d: d[:3], "not-avro"),
        (lambda d: d[:1] + struct.pack(">I", 99) + d[5:], "unknown-schema"),
        (lambda d: d[:20], "corrupt-body"),
        (lambda d: d + b"\x00\x01", "corrupt-body"),
    ],
)
def test_undecodable_bodies_raise_with_a_reason(specs, mangle, reason) -> None:  # type: ignore[no-untyped-def]
    codec = topic_codec(PREDICTIONS)
    with pytest.raises(MalformedMessageError) as raised:
        codec.decode(mangle(codec.encode(prediction())))
    assert raised.value.reason == reason
