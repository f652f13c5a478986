"""Kafka consumer lag per partition, as the worker's group sees it.

Lag is the partition's high watermark minus the group's committed offset. The worker commits a
message only after its events are written (or dead-lettered), so this lag counts everything not
yet finished, in flight included. It is read with a separate consumer that never subscribes: it
uses the group id only to look up committed offsets and so never joins the group or causes a
rebalance.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Consumer, TopicPartition

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.connections import confluent_config

TIMEOUT_S = 5.0


class LagReader:
    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(
            confluent_config(settings)
            | {
                "group.id": settings.worker_app_id,
                "enable.auto.commit": False,
            }
        )
        self.reported: set[tuple[str, int]] = set()

    def lag(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """partition -> messages not yet committed; a partition never committed counts from its
        first retained offset."""
        wanted = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not wanted:
            return {}
        result: dict[int, int] = {}
        for committed in self.consumer.committed(wanted, timeout=TIMEOUT_S):
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(topic, committed.partition), timeout=TIMEOUT_S, cached=False
            )
            start = committed.offset if committed.offset >= 0 else low
            result[committed.partition] = max(0, high - start)
        return result

    def update(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """Set the lag gauges of these partitions and drop those of partitions no longer held."""
        lags = self.lag(topic, partitions)
        now = {(topic, p) for p in lags}
        for gone_topic, gone in self.reported - now:
            metrics.WORKER_CONSUMER_LAG.remove(gone_topic, str(gone))
        for partition, value in lags.items():
            metrics.WORKER_CONSUMER_LAG.labels(topic, str(partition)).set(value)
        self.reported = now
        return lags

    def close(self) -> None:
        self.consumer.close()
