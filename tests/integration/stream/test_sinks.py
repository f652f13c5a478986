"""The dead-letter sink against real Kafka: one record per message whatever it held, values too
large for the DLQ stored truncated, and a refusal that can never succeed stops the worker."""

import asyncio
import hashlib

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, ConfigResource

from icecube_stream.config import Settings
from icecube_stream.stream.messages import Incoming, Rejection
from icecube_stream.stream.sinks import FatalKafkaError
from icecube_stream.stream.sinks.dead_letters import HEADER_LIMIT, DeadLetters
from icecube_stream.wire.topics import DLQ

pytestmark = pytest.mark.integration


def dead_letter(settings: Settings, message: Incoming, rejections: list[Rejection]) -> None:
    async def run() -> None:
        sinks = DeadLetters(settings)
        await sinks.start()
        try:
            await sinks.dead_letter(message, rejections)
        finally:
            await sinks.stop()

    asyncio.run(run())


def dlq_records(settings: Settings) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "check",
                         "auto.offset.reset": "earliest", "fetch.max.bytes": 16 << 20,
                         "max.partition.fetch.bytes": 16 << 20})  # fmt: skip
    consumer.subscribe([settings.topic(DLQ)])
    found = []
    for _ in range(20):
        for message in consumer.consume(10, timeout=1):
            if message.error() is None:
                found.append((message.value(), dict(message.headers() or [])))
        if found:
            break
    consumer.close()
    return found


def test_a_message_at_the_size_limit_refused_for_thousands_of_events_is_one_bounded_record(
    private: Settings,
) -> None:
    value = bytes(range(256)) * (8 * 1024 * 4 - 4)  # just under the 8 MiB limit of the topics
    message = Incoming(None, "it.pulses", 3, 42, b"key", value)
    rejections = [Rejection("unknown-sensor" if e % 2 else "non-finite",
                            f"event {e} is bad in its own long way " * 3, e)
                  for e in range(5000)]  # fmt: skip
    dead_letter(private, message, rejections)

    ((stored, headers),) = dlq_records(private)
    assert len(stored) < len(value) and value.startswith(stored)
    assert headers["dlq.truncated"] == b"1"
    assert headers["dlq.value_length"] == str(len(value)).encode()
    assert headers["dlq.value_sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["dlq.reason"] == b"non-finite,unknown-sensor"
    assert headers["dlq.offset"] == b"42" and headers["dlq.partition"] == b"3"
    assert all(len(v) <= HEADER_LIMIT for v in headers.values())
    assert headers["dlq.event_id"].startswith(b"0,1,2,3,")


def test_a_dlq_write_kafka_refuses_for_good_raises_fatal_instead_of_retrying(
    private: Settings,
) -> None:
    admin = AdminClient({"bootstrap.servers": private.kafka_bootstrap})
    resource = ConfigResource("topic", private.topic(DLQ), set_config={"max.message.bytes": "2000"})
    for future in admin.alter_configs([resource]).values():
        future.result(timeout=30)
    message = Incoming(None, "it.pulses", 0, 7, None, b"x" * 50_000)
    with pytest.raises(FatalKafkaError, match="for good"):
        dead_letter(private, message, [Rejection("not-avro", "not Avro")])
