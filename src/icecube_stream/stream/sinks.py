"""Where results go: predictions to Kafka and MongoDB, rejected input to the dead-letter topic.

Both prediction writes finish before the caller acknowledges the source messages, so a crash
between them means the events are processed again: Kafka may then carry a prediction twice
(at-least-once), MongoDB never does (documents keyed by event_id, see docs/streaming.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import BulkWriteError

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.stream.assembly import Event
from icecube_stream.stream.model_client import ModelAnswer
from icecube_stream.stream.schemas import DLQ, PREDICTIONS, AvroCodec, topic_specs

DUPLICATE_KEY = 11000


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
    events: Sequence[Event], answer: ModelAnswer, assembled_at_ns: int, predicted_at_ns: int
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


def dlq_headers(
    message: Incoming,
    reason: str,
    detail: str,
    event_ids: Sequence[int],
    extra: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, bytes]]:
    headers = [
        ("dlq.reason", reason.encode()),
        ("dlq.error", detail.encode()[:2000]),
        ("dlq.topic", message.topic.encode()),
        ("dlq.partition", str(message.partition).encode()),
        ("dlq.offset", str(message.offset).encode()),
        ("dlq.at", str(time.time_ns()).encode()),
    ]
    if event_ids:
        headers.append(("dlq.event_id", ",".join(map(str, event_ids)).encode()))
    headers += [(name, value.encode()) for name, value in extra]
    return headers


class Sinks:
    def __init__(self, settings: Settings) -> None:
        specs = topic_specs(settings.topics_dir)
        self.predictions_topic = settings.topic(PREDICTIONS)
        self.dlq_topic = settings.topic(DLQ)
        self.codec = AvroCodec.for_topic(specs[PREDICTIONS])
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=int(specs[DLQ].config.get("max.message.bytes", 1_048_576)),
        )
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
        self.collection = self.mongo[settings.mongo_database][settings.mongo_collection]

    async def start(self) -> None:
        await self.producer.start()
        await self.collection.create_index([("event_id", ASCENDING)], unique=True)

    async def stop(self) -> None:
        await self.producer.stop()
        await self.mongo.close()

    async def write_predictions(self, records: list[dict[str, Any]]) -> None:
        """Both writes, concurrently; raises if either fails (the caller retries the step)."""
        if records:
            await asyncio.gather(self._to_kafka(records), self._to_mongo(records))

    async def _to_kafka(self, records: list[dict[str, Any]]) -> None:
        deliveries: list[Awaitable[object]] = []
        for record in records:
            value = self.codec.encode(record)
            key = str(record["event_id"]).encode()
            deliveries.append(await self.producer.send(self.predictions_topic, value, key=key))
        # Awaiting the futures one by one: most are done by then, and gather() would wrap each
        # of thousands in a callback (a tenth of the worker's CPU in a profile). Every one is
        # awaited, so no failed delivery is left unretrieved; the first error is raised.
        errors: list[Exception] = []
        for delivery in deliveries:
            try:
                await delivery
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]

    async def _to_mongo(self, records: list[dict[str, Any]]) -> None:
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

    async def dead_letter(
        self,
        message: Incoming,
        reason: str,
        detail: str,
        event_ids: Sequence[int] = (),
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """The original bytes and key, with headers saying why and where they came from."""
        headers = dlq_headers(message, reason, detail, event_ids, extra_headers)
        delivery = await self.producer.send(
            self.dlq_topic, message.value, key=message.key, headers=headers
        )
        await delivery
        metrics.WORKER_DLQ.labels(reason=reason).inc()
