"""The chosen Kafka works with every client the pipeline uses: confluent-kafka, aiokafka, Faust."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from icecube_stream.config import Settings
from support import free_port

pytestmark = pytest.mark.integration

RECORDS = 10_000


def create_topic(settings: Settings, partitions: int = 3) -> str:
    name = f"it-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
    return name


def produce_confluent(settings: Settings, topic: str) -> None:
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "enable.idempotence": True}
    )
    failures: list[str] = []

    def on_delivery(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for i in range(RECORDS):
        producer.produce(
            topic, key=f"k{i}".encode(), value=f"v{i}".encode(), on_delivery=on_delivery
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []


def test_topic_auto_creation_is_off(stack: Settings) -> None:
    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": "probe"})
    try:
        metadata = consumer.list_topics(f"never-created-{uuid.uuid4().hex}", timeout=10)
        topic = next(iter(metadata.topics.values()))
        assert topic.error is not None  # unknown topic, not silently created
    finally:
        consumer.close()


def test_confluent_kafka_round_trip(stack: Settings) -> None:
    topic = create_topic(stack)
    produce_confluent(stack, topic)
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    seen: dict[bytes, bytes] = {}
    deadline = time.monotonic() + 60
    try:
        while len(seen) < RECORDS and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1):
                if message.error():
                    raise KafkaException(message.error())
                seen[message.key()] = message.value()
    finally:
        consumer.close()
    assert len(seen) == RECORDS
    assert seen[b"k1234"] == b"v1234"


def test_aiokafka_round_trip(stack: Settings) -> None:
    topic = create_topic(stack)

    async def round_trip() -> dict[bytes, bytes]:
        producer = AIOKafkaProducer(
            bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            batch = [producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
                     for i in range(RECORDS)]  # fmt: skip
            await asyncio.gather(*[await send for send in batch])
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=stack.kafka_bootstrap,
            group_id=f"g-{topic}",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        seen: dict[bytes, bytes] = {}
        try:
            async with asyncio.timeout(60):
                while len(seen) < RECORDS:
                    batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                    for records in batches.values():
                        seen.update((r.key, r.value) for r in records)
        finally:
            await consumer.stop()
        return seen

    seen = asyncio.run(round_trip())
    assert len(seen) == RECORDS
    assert seen[b"k9999"] == b"v9999"


def test_faust_worker_consumes_every_record(stack: Settings, tmp_path: Path) -> None:
    topic = create_topic(stack)
    produce_confluent(stack, topic)
    done_file = tmp_path / "done"
    env = {
        **os.environ,
        "COUNTER_TOPIC": topic,
        "COUNTER_EXPECTED": str(RECORDS),
        "COUNTER_DONE_FILE": str(done_file),
        "COUNTER_BOOTSTRAP": stack.kafka_bootstrap,
        "PYTHONPATH": str(Path(__file__).parent),
    }
    log = (tmp_path / "worker.log").open("wb")
    # `faust worker` serves its web page whatever web_enabled says: on a port of its own.
    web = ["--web-host", "127.0.0.1", "--web-port", str(free_port())]
    worker = subprocess.Popen(
        [sys.executable, "-m", "faust", "-A", "faust_counter_app", "worker", "-l", "info", *web],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not done_file.exists():
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.2)
        assert done_file.read_text() == str(RECORDS)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
