"""Topics applied from topics/, frames produced by the emitter and read back from real Kafka."""

import uuid

import numpy as np
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

from icecube_stream.config import Settings
from icecube_stream.events.batch import concat_batches
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.events.simulator import Simulator
from icecube_stream.stream import emitter, topics
from icecube_stream.wire.frame import decode_frame
from icecube_stream.wire.topics import DLQ, PULSES, topic_codec, topic_specs

pytestmark = pytest.mark.integration


@pytest.fixture
def isolated(stack: Settings) -> Settings:
    """The live stack with topic names of this test alone."""
    return stack.model_copy(update={"topic_prefix": f"it-{uuid.uuid4().hex[:8]}."})


def test_apply_creates_then_reports_unchanged_then_repairs_drift(isolated: Settings) -> None:
    first = {c.topic: c.action for c in topics.apply(isolated)}
    assert set(first.values()) == {"created"}
    assert sorted(first) == sorted(isolated.topic(t) for t in topic_specs())
    assert len(first) == 4
    assert {c.action for c in topics.apply(isolated)} == {"unchanged"}

    admin = AdminClient({"bootstrap.servers": isolated.kafka_bootstrap})
    name = isolated.topic(DLQ)
    entry = ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    (drift,) = [c for c in topics.apply(isolated, dry_run=True) if c.action != "unchanged"]
    assert drift.topic == name
    assert "retention.ms 1000 -> 2592000000" in drift.detail
    repaired = {c.topic: c.action for c in topics.apply(isolated)}
    assert repaired[name] == "updated"
    assert {c.action for c in topics.apply(isolated)} == {"unchanged"}


def test_producing_without_topics_is_a_clear_error(isolated: Settings) -> None:
    with pytest.raises(topics.TopicMissingError, match=r"topics apply"):
        topics.require_topics(isolated, PULSES)


def test_every_event_arrives_once_with_its_pulses(isolated: Settings) -> None:
    topics.apply(isolated)
    batch = concat_batches(list(Simulator(icecube_geometry(), seed=5).iter_batches(600)))
    settings = isolated.model_copy(update={"frame_max_events": 50, "frame_max_pulses": 400})
    report = emitter.emit(settings, [("sim", batch)])
    assert report.ok
    assert report.events == batch.n_events

    codec = topic_codec(PULSES, settings.topics_dir)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "check",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([settings.topic(PULSES)])
    pulses: dict[int, list[np.ndarray]] = {}
    keys_by_event: dict[int, set[bytes]] = {}
    frames = 0
    try:
        while frames < report.frames:
            for message in consumer.consume(100, timeout=5):
                assert message.error() is None
                frame = decode_frame(message.value(), codec)
                frames += 1
                for k, event_id in enumerate(frame.event_id.tolist()):
                    lo, hi = frame.offsets[k], frame.offsets[k + 1]
                    pulses.setdefault(event_id, []).append(frame.time[lo:hi])
                    keys_by_event.setdefault(event_id, set()).add(message.key())
    finally:
        consumer.close()
    assert sorted(pulses) == sorted(batch.event_id.tolist())
    for k, event_id in enumerate(batch.event_id.tolist()):
        got = np.sort(np.concatenate(pulses[event_id]))
        assert got.tolist() == np.sort(batch.time[batch.offsets[k] : batch.offsets[k + 1]]).tolist()
        assert len(keys_by_event[event_id]) == 1  # all parts of an event share one key
    assert (batch.pulse_counts > 400).any()  # the split path was exercised
