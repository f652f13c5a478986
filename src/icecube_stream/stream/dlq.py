"""`dlq replay`: send dead-lettered messages back to the topic they came from, once.

After the cause is fixed (the right model deployed, a producer corrected), the original bytes
and key go back unchanged. A record stored truncated, because it was too large for the DLQ, is
counted and left: its length and SHA-256 in the headers identify the original. A consumer group
per reason remembers how far replay got, and its offsets are committed only after Kafka
acknowledged every re-sent message (acks=all, idempotent), so an interrupted replay resends at
most what was unacknowledged, and a second replay of the same reason sends nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Message, Producer

from icecube_stream.config import Settings
from icecube_stream.wire.topics import DLQ

FLUSH_TIMEOUT_S = 60.0


@dataclass
class ReplayReport:
    replayed: int = 0
    skipped: int = 0  # other reasons
    truncated: int = 0  # stored cut short (too large for the DLQ): the bytes are not all there
    failed: int = 0

    @property
    def ok(self) -> bool:
        return self.failed == 0


def replay_group(settings: Settings, reason: str | None) -> str:
    return f"{settings.worker_app_id}-dlq-replay-{reason or 'all'}"


def _header(message: Message, name: str) -> str | None:
    headers = message.headers() or []
    for key, value in headers.items() if isinstance(headers, dict) else headers:
        if key == name and value is not None:
            return value.decode() if isinstance(value, bytes) else value
    return None


def replay(settings: Settings, reason: str | None) -> ReplayReport:
    """Re-send every not yet replayed DLQ record (of `reason`, or all) to its source topic."""
    report = ReplayReport()
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": replay_group(settings, reason),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "enable.idempotence": True}
    )

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is None:
            report.replayed += 1
        else:
            report.failed += 1

    try:
        topic = settings.topic(DLQ)
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.subscribe([topic])
        at_end: set[int] = set()
        while len(at_end) < len(partitions):
            for message in consumer.consume(500, timeout=1):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(int(message.partition() or 0))
                        continue
                    raise RuntimeError(f"reading {topic}: {error}")
                at_end.discard(int(message.partition() or 0))
                source = _header(message, "dlq.topic")
                reasons = (_header(message, "dlq.reason") or "").split(",")
                if source is None or (reason is not None and reason not in reasons):
                    report.skipped += 1
                    continue
                if _header(message, "dlq.truncated") == "1":
                    report.truncated += 1
                    continue
                while True:
                    try:
                        producer.produce(
                            source, message.value(), message.key(), on_delivery=delivered
                        )
                        break
                    except BufferError:  # local queue full: let deliveries drain
                        producer.poll(0.05)
                producer.poll(0)
        report.failed += producer.flush(FLUSH_TIMEOUT_S)
        if report.ok and report.replayed + report.skipped:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return report
