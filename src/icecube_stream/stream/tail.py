"""`predictions tail` and `alerts tail`: the newest records of a topic, for the on-call operator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from icecube_stream.config import Settings
from icecube_stream.stream.reading import TopicReader
from icecube_stream.wire.codec import MalformedMessageError
from icecube_stream.wire.topics import ALERTS, PREDICTIONS, json_codec, topic_codec

#: What orders a topic's backlog in time (a partition is in order; partitions are not).
WHEN = {PREDICTIONS: "predicted_at_ns", ALERTS: "alert_datetime"}


def tail(
    settings: Settings, last: int, follow: bool, topic: str = PREDICTIONS
) -> Iterator[dict[str, Any]]:
    """The newest `last` records (oldest first), then, with follow, every new one."""
    decode = _decoder(settings, topic)
    reader = TopicReader(settings, settings.topic(topic))
    try:
        backlog = [decode(message.value()) for message in reader.backlog(last)]
        when = WHEN[topic]  # records that did not decode have none: they sort first
        backlog.sort(key=lambda record: (when in record, record.get(when, 0)))
        yield from backlog[-last:] if last else []
        if follow:
            yield from (decode(message.value()) for message in reader.follow())
    finally:
        reader.close()


def _decoder(settings: Settings, topic: str) -> Callable[[bytes | None], dict[str, Any]]:
    codec = (
        json_codec(topic, settings.topics_dir)
        if topic == ALERTS
        else topic_codec(topic, settings.topics_dir)
    )

    def decode(value: bytes | None) -> dict[str, Any]:
        try:
            return codec.decode(value or b"")
        except MalformedMessageError as error:
            return {"error": str(error)}

    return decode
