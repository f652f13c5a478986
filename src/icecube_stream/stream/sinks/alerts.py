"""The alerts topic as a sink: each selected event's notice once, with its sky map beside it.

Predictions may reach their topic twice after a crash (at-least-once); an alert must not, since
a telescope acts on each. So every alert is first recorded in MongoDB (keyed by event id, with
the alerts partition's end offset before the send), then sent, then marked sent. A replayed
event finds its record: marked sent, it is skipped; not marked (the worker died around the send),
the partition is read from the recorded offset and the alert is sent only if it is not there.
Nothing is sent before its record exists, so nothing is lost, and nothing found on the topic is
sent again. Two workers holding the same event at once (a rebalance in the middle of a step)
could both find it unsent; the worker's fence (stream/fence.py) keeps the old owner from sending
once its revocation began, and makes the revocation wait for a send in progress, so the new
owner finds the alert sent and marked, or recorded and not sent.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from icecube_stream import metrics
from icecube_stream.alerts.policy import AlertPolicy
from icecube_stream.alerts.rates import load_rates
from icecube_stream.alerts.selection import Alert, select_alerts
from icecube_stream.config import Settings
from icecube_stream.connections import aiokafka_options, mongo_options
from icecube_stream.sky.skymap import vmf_skymap
from icecube_stream.sky.store import skymap_url, write_skymap
from icecube_stream.stream.fence import Fence
from icecube_stream.stream.sinks.kafka import KafkaSink, delivered
from icecube_stream.stream.sinks.mongo import DUPLICATE_KEY
from icecube_stream.wire.partitions import partitions_for_keys
from icecube_stream.wire.topics import ALERTS, json_codec

SCAN_TIMEOUT_S = 60.0


class KafkaAlerts(KafkaSink):
    name = "alerts"

    def __init__(self, settings: Settings, fence: Fence | None = None) -> None:
        super().__init__(settings)
        self.fence = fence or Fence()
        self.topic = settings.topic(ALERTS)
        self.codec = json_codec(ALERTS, settings.topics_dir)
        self.policy = AlertPolicy.from_settings(settings)
        self.rates = load_rates()
        self.skymap_url = partial(skymap_url, settings.skymap_base_url)
        self.mongo: AsyncMongoClient[dict[str, Any]] | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self._reading = asyncio.Lock()  # the consumer: one offset lookup or read at a time

    @property
    def sent(self) -> AsyncCollection[dict[str, Any]]:
        if self.mongo is None:
            raise RuntimeError("KafkaAlerts used before start")
        return self.mongo[self.settings.mongo_database][self.settings.mongo_alerts_collection]

    async def start(self) -> None:
        await super().start()
        if self.mongo is None:
            self.mongo = AsyncMongoClient(self.settings.mongo_url, **mongo_options(self.settings))
        if self.consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                enable_auto_commit=False,
                isolation_level="read_committed",
                **aiokafka_options(self.settings),
            )
            await consumer.start()
            self.consumer = consumer

    async def stop(self) -> None:
        await super().stop()
        if self.consumer is not None:
            await self.consumer.stop()
        if self.mongo is not None:
            await self.mongo.close()

    async def write(self, records: list[dict[str, Any]], generation: int) -> None:
        alerts = select_alerts(
            records,
            self.policy,
            self.rates,
            trigger_rate_hz=self.settings.trigger_rate_hz,
            skymap_url=self.skymap_url,
            alert_time_ns=time.time_ns(),
        )
        if not alerts:
            return
        where = await self._partition_of([a.event_id for a in alerts])
        unsent = await self._not_yet_sent(alerts, where)
        for alert in unsent:  # the map first: the notice points to it
            await asyncio.to_thread(self._write_skymap, alert)
        async with self.fence.holding(generation) as held:
            if not held:  # revoked meanwhile: the next owner finds the records, not sent
                metrics.ALERTS_REVOKED.inc(len(unsent))
                return
            await self._send(unsent, where)
        acknowledged = time.time_ns()
        for alert in unsent:
            metrics.ALERT_LATENCY.observe(max(acknowledged - alert.event_time_ns, 0) / 1e9)
        metrics.ALERTS_SENT.inc(len(unsent))

    def _write_skymap(self, alert: Alert) -> None:
        table = vmf_skymap(
            alert.ra,
            alert.dec,
            alert.kappa,
            name=alert.notice["event_name"][0],
            time_ns=alert.event_time_ns,
            event_id=alert.event_id,
        )
        write_skymap(table, alert.notice["healpix_url"])

    async def _partition_of(self, event_ids: list[int]) -> dict[int, TopicPartition]:
        """Each alert's partition, the one its key's default partitioner picks: recorded before
        the send and sent to explicitly, so the record says where to look after a crash."""
        partitions = sorted(await self.producer.partitions_for(self.topic))
        keys = [str(e).encode() for e in event_ids]
        chosen = partitions_for_keys(keys, len(partitions)).tolist()
        return {
            e: TopicPartition(self.topic, partitions[k])
            for e, k in zip(event_ids, chosen, strict=True)
        }

    async def _not_yet_sent(
        self, alerts: list[Alert], where: dict[int, TopicPartition]
    ) -> list[Alert]:
        """Record each alert before its send; of those recorded earlier, keep the ones the
        topic does not have."""
        assert self.consumer is not None
        async with self._reading:
            ends = await self.consumer.end_offsets(sorted(set(where.values())))
        intents = [
            {"_id": a.event_id, "partition": where[a.event_id].partition,
             "offset_before": ends[where[a.event_id]], "notice": a.notice, "sent": False}
            for a in alerts
        ]  # fmt: skip
        try:
            await self.sent.insert_many(intents, ordered=False)
            return alerts
        except BulkWriteError as error:
            if any(e["code"] != DUPLICATE_KEY for e in error.details["writeErrors"]):
                raise
            recorded_before = [e["op"]["_id"] for e in error.details["writeErrors"]]
        earlier = {
            doc["_id"]: doc async for doc in self.sent.find({"_id": {"$in": recorded_before}})
        }
        found = await self._found_on_topic([d for d in earlier.values() if not d["sent"]])
        unsent, already = [], []
        for alert in alerts:
            doc = earlier.get(alert.event_id)
            if doc is not None and (doc["sent"] or alert.event_id in found):
                already.append(alert.event_id)
            else:
                unsent.append(alert)
        if already:
            metrics.ALERTS_ALREADY_SENT.inc(len(already))
            await self._mark_sent(already)
        return unsent

    async def _found_on_topic(self, records: list[dict[str, Any]]) -> set[int]:
        """Event ids of records never marked sent whose alert reached the topic after all: each
        partition read once, from the earliest recorded offset to its end. One read at a time
        (steps run concurrently; a seek would move another's position)."""
        assert self.consumer is not None
        wanted = {(d["partition"], str(d["_id"]).encode()): d for d in records}
        starts: dict[int, int] = {}
        for d in records:
            starts[d["partition"]] = min(starts.get(d["partition"], d["offset_before"]),
                                         d["offset_before"])  # fmt: skip
        found: set[int] = set()
        async with self._reading, asyncio.timeout(SCAN_TIMEOUT_S):  # a stall is retried
            for partition, start in starts.items():
                tp = TopicPartition(self.topic, partition)
                end = (await self.consumer.end_offsets([tp]))[tp]
                if end <= start:
                    continue
                self.consumer.assign([tp])
                self.consumer.seek(tp, start)
                while (await self.consumer.position(tp)) < end:
                    batch = await self.consumer.getmany(tp, timeout_ms=1000)
                    for message in batch.get(tp, []):
                        record = wanted.get((partition, message.key))
                        if record is not None and message.offset >= record["offset_before"]:
                            found.add(record["_id"])
        return found

    async def _send(self, alerts: list[Alert], where: dict[int, TopicPartition]) -> None:
        deliveries = [
            await self.producer.send(
                self.topic,
                key=str(a.event_id).encode(),
                value=self.codec.encode(a.notice),
                partition=where[a.event_id].partition,
            )
            for a in alerts
        ]
        await delivered(deliveries, "alerts")
        await self._mark_sent([a.event_id for a in alerts])

    async def _mark_sent(self, event_ids: list[int]) -> None:
        await self.sent.update_many({"_id": {"$in": event_ids}}, {"$set": {"sent": True}})
