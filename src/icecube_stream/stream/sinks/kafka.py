"""The predictions topic as a sink, and the producer settings every worker sink shares."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, errors
from aiokafka.producer.message_accumulator import BatchBuilder

from icecube_stream.config import Settings
from icecube_stream.connections import aiokafka_options
from icecube_stream.stream.sinks import FatalKafkaError
from icecube_stream.wire.partitions import partitions_for_keys
from icecube_stream.wire.topics import PREDICTIONS, topic_codec

#: Kafka errors a retry can never fix: the record is too large, or the client may not write.
NEVER_SUCCEEDS = (
    errors.MessageSizeTooLargeError,
    errors.RecordTooLargeError,
    errors.RecordListTooLargeError,
    errors.TopicAuthorizationFailedError,
    errors.ClusterAuthorizationFailedError,
    errors.InvalidTopicError,
)


async def delivered(deliveries: Sequence[Awaitable[object]], what: str) -> None:
    """Await every delivery, so none is left unretrieved; raise the first error, as
    FatalKafkaError when no retry can fix it."""
    outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if failures:
        if isinstance(failures[0], NEVER_SUCCEEDS):
            raise FatalKafkaError(f"Kafka refuses {what} for good: {failures[0]!r}")
        raise failures[0]


def producer(settings: Settings, max_request_size: int = 1_048_576) -> AIOKafkaProducer:
    """Acknowledged by every in-sync replica, idempotent: a retried send is written once."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        # A broker cut off (rather than dead) holds requests until this runs out; the
        # controller fences it after 9 s, so retrying at 10 s finds the new leaders.
        request_timeout_ms=10_000,
        max_request_size=max_request_size,
        **aiokafka_options(settings),
    )


class KafkaSink:
    """A sink writing to one topic with a producer of its own, connected at start (the client
    needs the running loop); start is safe to call again after a failure."""

    def __init__(self, settings: Settings, max_request_size: int = 1_048_576) -> None:
        self.settings = settings
        self.max_request_size = max_request_size
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self._producer is None:
            started = producer(self.settings, self.max_request_size)
            await started.start()
            self._producer = started

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError(f"{type(self).__name__} used before start")
        return self._producer


class KafkaPredictions(KafkaSink):
    """Records are grouped by partition (Kafka's default partition of the event id, so a key
    lands where a single send would put it) and handed over as one record batch per
    partition: a send per record cost a tenth of the worker's CPU in a profile."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.topic = settings.topic(PREDICTIONS)
        self.codec = topic_codec(PREDICTIONS, settings.topics_dir)

    async def write(self, records: list[dict[str, Any]], generation: int) -> None:
        """Raises if any delivery failed (the caller retries all)."""
        partitions = sorted(await self.producer.partitions_for(self.topic))
        keys = [str(record["event_id"]).encode() for record in records]
        chosen = partitions_for_keys(keys, len(partitions)).tolist()
        by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for record, key, index in zip(records, keys, chosen, strict=True):
            by_partition[partitions[index]].append((key, self.codec.encode(record)))
        deliveries: list[Awaitable[object]] = []
        for partition, messages in by_partition.items():
            batch = self.producer.create_batch()
            for key, value in messages:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full
                    deliveries.append(await self._send(batch, partition))
                    batch = self.producer.create_batch()
                    # A batch takes its first record whatever its size; the broker judges it.
                    batch.append(key=key, value=value, timestamp=None)
            deliveries.append(await self._send(batch, partition))
        await delivered(deliveries, "predictions")

    async def _send(self, batch: BatchBuilder, partition: int) -> Awaitable[object]:
        delivery: Awaitable[object] = await self.producer.send_batch(
            batch, self.topic, partition=partition
        )
        return delivery
