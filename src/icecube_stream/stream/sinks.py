"""Where results go: predictions to Kafka and MongoDB, rejected input to the dead-letter topic.

Both prediction writes finish before the caller acknowledges the source messages, so a crash
between them means the events are processed again: Kafka may then carry a prediction twice
(at-least-once), MongoDB never does (documents keyed by event_id, see docs/streaming.md). Each
is written, and retried, on its own, so an outage of one does not repeat writes to the other.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer, errors
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import BulkWriteError

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.stream.assembly import Event
from icecube_stream.wire.model_api import PredictionBatch
from icecube_stream.wire.topics import DLQ, PREDICTIONS, topic_codec, topic_specs

DUPLICATE_KEY = 11000
#: Bytes of each free-text DLQ header (details, event ids): bounded so that a message refused for
#: thousands of events still fits in one record.
HEADER_LIMIT = 4096
#: Room the headers and the record's framing take beside a value that must be truncated.
DLQ_OVERHEAD = 32 * 1024

#: Kafka errors a retry can never fix: the record is too large, or the client may not write.
NEVER_SUCCEEDS = (
    errors.MessageSizeTooLargeError,
    errors.RecordTooLargeError,
    errors.RecordListTooLargeError,
    errors.TopicAuthorizationFailedError,
    errors.ClusterAuthorizationFailedError,
    errors.InvalidTopicError,
)


class FatalKafkaError(RuntimeError):
    """A write Kafka refuses for good: the worker stops, and the messages are read again after
    the fix (nothing was acknowledged)."""


@dataclass(frozen=True)
class Rejection:
    """Why a message, or one event of it, is refused; headers travel to its DLQ record."""

    reason: str
    detail: str
    event_id: int | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Incoming:
    """One raw message as the worker received it; token is what acknowledges it."""

    token: Any
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def prediction_records(
    events: Sequence[Event], answer: PredictionBatch, assembled_at_ns: int, predicted_at_ns: int
) -> list[dict[str, Any]]:
    """Prediction records in the `icecube.predictions` schema, one per event."""
    return [
        {
            "event_id": event.event_id,
            "azimuth": float(answer.azimuth[k]),
            "zenith": float(answer.zenith[k]),
            "x": float(answer.direction[k, 0]),
            "y": float(answer.direction[k, 1]),
            "z": float(answer.direction[k, 2]),
            "angular_uncertainty": float(answer.angular_uncertainty[k]),
            "model_name": answer.model_name,
            "model_version": answer.model_version,
            "n_pulses": event.n_pulses,
            "emitted_at_ns": event.emitted_at_ns,
            "assembled_at_ns": assembled_at_ns,
            "predicted_at_ns": predicted_at_ns,
            "flags": [] if event.complete else ["incomplete"],
        }
        for k, event in enumerate(events)
    ]


def _bounded(text: str, limit: int = HEADER_LIMIT) -> bytes:
    data = text.encode()
    if len(data) <= limit:
        return data
    return data[: limit - 40] + f"... ({len(data)} bytes in all)".encode()


def dlq_headers(
    message: Incoming, rejections: Sequence[Rejection], value: bytes
) -> list[tuple[str, bytes]]:
    """Every reason and event id of one message's refusals, each header bounded in size."""
    reasons = list(dict.fromkeys(r.reason for r in rejections))
    details = list(dict.fromkeys(r.detail for r in rejections))
    event_ids = [str(r.event_id) for r in rejections if r.event_id is not None]
    headers = [
        ("dlq.reason", ",".join(reasons).encode()),
        ("dlq.error", _bounded("; ".join(details))),
        ("dlq.topic", message.topic.encode()),
        ("dlq.partition", str(message.partition).encode()),
        ("dlq.offset", str(message.offset).encode()),
        ("dlq.at", str(time.time_ns()).encode()),
    ]
    if event_ids:
        pairs = [f"{r.event_id}:{r.reason}" for r in rejections if r.event_id is not None]
        headers.append(("dlq.event_id", _bounded(",".join(event_ids))))
        headers.append(("dlq.events", _bounded(",".join(pairs))))  # which event, which reason
    if len(value) < len(message.value):
        headers += [
            ("dlq.truncated", b"1"),
            ("dlq.value_length", str(len(message.value)).encode()),
            ("dlq.value_sha256", hashlib.sha256(message.value).hexdigest().encode()),
        ]
    extra = {name: v for r in rejections for name, v in r.headers}
    headers += [(name, _bounded(v)) for name, v in extra.items()]
    return headers


class Sinks:
    def __init__(self, settings: Settings) -> None:
        specs = topic_specs(settings.topics_dir)
        self.predictions_topic = settings.topic(PREDICTIONS)
        self.dlq_topic = settings.topic(DLQ)
        self.codec = topic_codec(PREDICTIONS, settings.topics_dir)
        self.dlq_max_bytes = int(specs[DLQ].config.get("max.message.bytes", 1_048_576))
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            # A broker cut off (rather than dead) holds requests until this runs out; the
            # controller fences it after 9 s, so retrying at 10 s finds the new leaders.
            request_timeout_ms=10_000,
            max_request_size=self.dlq_max_bytes,
        )
        self.producer_started = False
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
        self.collection = self.mongo[settings.mongo_database][settings.mongo_collection]

    async def start(self) -> None:
        """Connect both; safe to call again after a failure (what started stays started)."""
        if not self.producer_started:
            await self.producer.start()
            self.producer_started = True
        await self.collection.create_index([("event_id", ASCENDING)], unique=True)

    async def stop(self) -> None:
        await self.producer.stop()
        await self.mongo.close()

    async def to_kafka(self, records: list[dict[str, Any]]) -> None:
        """The predictions topic; raises if any delivery failed (the caller retries all)."""
        deliveries: list[Awaitable[object]] = []
        for record in records:
            value = self.codec.encode(record)
            key = str(record["event_id"]).encode()
            deliveries.append(await self.producer.send(self.predictions_topic, value, key=key))
        # Awaiting the futures one by one: most are done by then, and gather() would wrap each
        # of thousands in a callback (a tenth of the worker's CPU in a profile). Every one is
        # awaited, so no failed delivery is left unretrieved; the first error is raised.
        failures: list[Exception] = []
        for delivery in deliveries:
            try:
                await delivery
            except Exception as error:
                failures.append(error)
        if failures:
            if isinstance(failures[0], NEVER_SUCCEEDS):
                raise FatalKafkaError(f"Kafka refuses predictions for good: {failures[0]!r}")
            raise failures[0]

    async def to_mongo(self, records: list[dict[str, Any]]) -> None:
        """Insert keyed by event_id (`_id`); a replayed event's duplicate-key error is the
        idempotence working, so the document already there stays: one document per event."""
        started = time.perf_counter()
        written_at = time.time_ns()
        documents = [
            {"_id": r["event_id"], **r, "status": "predicted", "written_at_ns": written_at}
            for r in records
        ]
        try:
            await self.collection.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            others = [e for e in error.details["writeErrors"] if e["code"] != DUPLICATE_KEY]
            if others or error.details.get("writeConcernErrors"):
                raise
        metrics.MONGO_WRITE_SECONDS.observe(time.perf_counter() - started)

    async def dead_letter(self, message: Incoming, rejections: Sequence[Rejection]) -> None:
        """One record per message: its original key and bytes (truncated, with their length
        and SHA-256 in headers, when they would not fit) and every reason it was refused for."""
        value = message.value
        if len(value) + len(message.key or b"") > self.dlq_max_bytes - DLQ_OVERHEAD:
            value = value[: max(0, self.dlq_max_bytes - DLQ_OVERHEAD - len(message.key or b""))]
        headers = dlq_headers(message, rejections, value)
        try:
            delivery = await self.producer.send(
                self.dlq_topic, value, key=message.key, headers=headers
            )
            await delivery
        except NEVER_SUCCEEDS as error:
            raise FatalKafkaError(f"Kafka refuses this DLQ record for good: {error!r}") from error
        for reason in dict.fromkeys(r.reason for r in rejections):
            metrics.WORKER_DLQ.labels(reason=reason).inc()
