"""The Kafka sinks against real Kafka. Predictions: handed over in record batches, each lands
once, on the partition a single send would choose. Dead letters: one record per message whatever
it held, values too large for the DLQ stored truncated, and a refusal that can never succeed
stops the worker."""

import asyncio
import hashlib

import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, ConfigResource

from icecube_stream.config import Settings
from icecube_stream.stream.messages import Incoming, Rejection
from icecube_stream.stream.sinks import FatalKafkaError
from icecube_stream.stream.sinks.dead_letters import HEADER_LIMIT, DeadLetters
from icecube_stream.stream.sinks.kafka import KafkaPredictions
from icecube_stream.wire.topics import DLQ, PREDICTIONS, topic_codec
from support import write_once

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


def write_predictions(settings: Settings, records: list[dict[str, object]]) -> None:
    write_once(KafkaPredictions(settings), records)


def test_predictions_land_once_each_on_the_partition_a_single_send_would_choose(
    private: Settings,
) -> None:
    # 3,000 records of ~150 bytes: several 16 KiB record batches per partition.
    records = [{"event_id": 10**12 + k, "azimuth": 1.0, "zenith": 2.0, "x": 0.1, "y": 0.2,
                "z": 0.3, "angular_uncertainty": 0.25, "model_name": "direction",
                "model_version": "7", "n_pulses": k % 90, "emitted_at_ns": k,
                "assembled_at_ns": k + 1, "predicted_at_ns": k + 2, "event_time_ns": k,
                "event_time_source": "emitted", "ra": 0.5, "dec": -0.5,
                "track_probability": None, "charge": 100.0 + k, "flags": []}
               for k in range(3000)]  # fmt: skip
    write_predictions(private, records)

    codec = topic_codec(PREDICTIONS, private.topics_dir)
    consumer = Consumer({"bootstrap.servers": private.kafka_bootstrap, "group.id": "check",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([private.topic(PREDICTIONS)])
    found: dict[int, list[tuple[int, dict[str, object]]]] = {}
    for _ in range(30):
        for message in consumer.consume(1000, timeout=1):
            if message.error() is None:
                record = codec.decode(message.value())
                assert message.key() == str(record["event_id"]).encode()
                found.setdefault(int(record["event_id"]), []).append((message.partition(), record))
        if len(found) >= len(records):
            break
    consumer.close()
    assert sorted(found) == [10**12 + k for k in range(len(records))]
    for k, expected in enumerate(records):
        ((partition, record),) = found[10**12 + k]  # once each
        assert record == expected
        assert partition == (murmur2(str(10**12 + k).encode()) & 0x7FFFFFFF) % 6


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
