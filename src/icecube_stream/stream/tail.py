"""`predictions tail`: a plain Kafka consumer of `icecube.predictions` for the on-call operator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from icecube_stream.config import Settings
from icecube_stream.wire.codec import AvroCodec, MalformedMessageError
from icecube_stream.wire.topics import PREDICTIONS, topic_codec


def tail(settings: Settings, last: int, follow: bool) -> Iterator[dict[str, Any]]:
    """The newest `last` predictions (oldest first), then, with follow, every new one."""
    codec = topic_codec(PREDICTIONS, settings.topics_dir)
    topic = settings.topic(PREDICTIONS)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"tail-{uuid.uuid4().hex[:8]}",  # private: never moves anyone's offsets
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        assignment, ends = [], {}
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            assignment.append(TopicPartition(topic, partition, max(low, high - last)))
            ends[partition] = high
        consumer.assign(assignment)
        backlog = []
        while any(consumer.position([TopicPartition(topic, p)])[0].offset < end
                  for p, end in ends.items()):  # fmt: skip
            for message in consumer.consume(500, timeout=1):
                if message.error() is None:
                    backlog.append(_decode(codec, message.value()))
        backlog.sort(key=lambda record: record.get("predicted_at_ns", 0))
        yield from backlog[-last:] if last else []
        while follow:
            for message in consumer.consume(100, timeout=1):
                if message.error() is None:
                    yield _decode(codec, message.value())
    finally:
        consumer.close()


def _decode(codec: AvroCodec, value: bytes | None) -> dict[str, Any]:
    try:
        return codec.decode(value or b"")
    except MalformedMessageError as error:
        return {"error": str(error)}
