"""`dlq show` and `dlq replay`: read the dead letters, and send them back once their cause is fixed.

After the cause is fixed (the right model deployed, a producer corrected), the original bytes
and key go back unchanged. A record stored truncated, because it was too large for the DLQ, is
counted and left: its length and SHA-256 in the headers identify the original. A consumer group
per reason remembers how far replay got, and its offsets are committed only after Kafka
acknowledged every re-sent message (acks=all, idempotent), so an interrupted replay resends at
most what was unacknowledged, and a second replay of the same reason sends nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

from icecube_stream.config import Settings
from icecube_stream.connections import confluent_config
from icecube_stream.stream.reading import TopicReader, partitions
from icecube_stream.stream.topics import TopicMissingError
from icecube_stream.wire.topics import DLQ

FLUSH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ record as the operator reads it: where it sits, and its `dlq.*` headers."""

    partition: int
    offset: int
    key: str | None
    value_bytes: int
    headers: dict[str, str]

    @property
    def reasons(self) -> list[str]:
        return self.headers.get("dlq.reason", "").split(",")

    def as_dict(self) -> dict[str, Any]:
        return {"partition": self.partition, "offset": self.offset, "key": self.key,
                "value_bytes": self.value_bytes, "headers": self.headers}  # fmt: skip


def dead_letters(settings: Settings, reason: str | None, last: int | None) -> list[DeadLetter]:
    """The DLQ's records (of `reason`, or all), oldest first; the newest `last` of them."""
    reader = TopicReader(settings, settings.topic(DLQ))
    try:
        letters = [_dead_letter(message) for message in reader.backlog()]
    finally:
        reader.close()
    letters = [letter for letter in letters if reason is None or reason in letter.reasons]
    letters.sort(key=lambda letter: int(letter.headers.get("dlq.at", "0")))
    return letters[-last:] if last else letters


def _dead_letter(message: Message) -> DeadLetter:
    key = message.key()
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return DeadLetter(
        partition=int(message.partition() or 0),
        offset=int(message.offset() or 0),
        key=key.decode(errors="replace") if isinstance(key, bytes) else key,
        value_bytes=len(message.value() or b""),
        headers={name: _text(value) for name, value in pairs if value is not None},
    )


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


@dataclass
class ReplayReport:
    replayed: int = 0  # with dry_run: would be replayed
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
            return _text(value)
    return None


def replay(settings: Settings, reason: str | None, dry_run: bool = False) -> ReplayReport:
    """Re-send every not yet replayed DLQ record (of `reason`, or all) to its source topic;
    with dry_run, count them, sending and committing nothing."""
    report = ReplayReport()
    consumer = Consumer(
        confluent_config(settings)
        | {
            "group.id": replay_group(settings, reason),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "log_level": 0,  # an unreachable broker is one TopicMissingError, not a log flood
        }
    )
    topic = settings.topic(DLQ)
    try:
        n_partitions = len(partitions(consumer, settings, topic))
    except TopicMissingError:
        consumer.close()
        raise
    producer = Producer(confluent_config(settings) | {"acks": "all", "enable.idempotence": True})

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is None:
            report.replayed += 1
        else:
            report.failed += 1

    try:
        consumer.subscribe([topic])
        at_end: set[int] = set()
        while len(at_end) < n_partitions:
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
                if dry_run:
                    report.replayed += 1
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
        if report.ok and report.replayed + report.skipped and not dry_run:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return report
