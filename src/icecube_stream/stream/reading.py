"""A private reader of one topic for the operator's commands (`predictions tail`, `dlq show`).

It assigns partitions itself and commits nothing, so reading never moves a consumer group's
offsets. A broker that does not answer is one `TopicMissingError` naming the address, with
librdkafka's own logging off: the operator gets one line, not a connection failure per second.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from icecube_stream.config import Settings
from icecube_stream.connections import confluent_config
from icecube_stream.stream.topics import TopicMissingError

TIMEOUT_S = 5.0


def partitions(consumer: Consumer, settings: Settings, topic: str) -> list[int]:
    """The topic's partitions, or one clear error: Kafka not answering, or no such topic."""
    try:
        metadata = consumer.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
    except KafkaException:
        raise TopicMissingError(
            f"Kafka at {settings.kafka_bootstrap} does not answer; is it up? "
            "`icecube-stream stack status`"
        ) from None
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise TopicMissingError(
            f"topic {topic} does not exist; create it with `icecube-stream topics apply`"
        )
    return sorted(metadata.partitions)


class TopicReader:
    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer(
            confluent_config(settings)
            | {
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",  # never committed
                "enable.auto.commit": False,
                "log_level": 0,
            }
        )
        try:
            self.partitions = partitions(self.consumer, settings, topic)
        except TopicMissingError:
            self.consumer.close()
            raise

    def backlog(self, last: int | None = None) -> list[Message]:
        """What each partition holds now, or its newest `last` records; then stay assigned
        there, so `follow` continues with what comes next."""
        assignment, unread = [], {}
        for partition in self.partitions:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=TIMEOUT_S
            )
            start = low if last is None else max(low, high - last)
            assignment.append(TopicPartition(self.topic, partition, start))
            if start < high:
                unread[partition] = high
        self.consumer.assign(assignment)
        messages: list[Message] = []
        while unread:
            for message in self.consumer.consume(500, timeout=1):
                if message.error() is None:
                    messages.append(message)
                    partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                    if offset + 1 >= unread.get(partition, 0):
                        unread.pop(partition, None)
            positions = [TopicPartition(self.topic, partition) for partition in unread]
            for position in self.consumer.position(positions) if positions else []:
                if position.offset >= unread[position.partition]:  # past control records
                    unread.pop(position.partition)
        return messages

    def follow(self) -> Iterator[Message]:
        while True:
            yield from (m for m in self.consumer.consume(100, timeout=1) if m.error() is None)

    def close(self) -> None:
        self.consumer.close()
