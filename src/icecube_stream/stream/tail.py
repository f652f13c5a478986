"""`predictions tail`: the newest predictions on `icecube.predictions`, for the on-call operator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from icecube_stream.config import Settings
from icecube_stream.stream.reading import TopicReader
from icecube_stream.wire.codec import AvroCodec, MalformedMessageError
from icecube_stream.wire.topics import PREDICTIONS, topic_codec


def tail(settings: Settings, last: int, follow: bool) -> Iterator[dict[str, Any]]:
    """The newest `last` predictions (oldest first), then, with follow, every new one."""
    codec = topic_codec(PREDICTIONS, settings.topics_dir)
    reader = TopicReader(settings, settings.topic(PREDICTIONS))
    try:
        backlog = [_decode(codec, message.value()) for message in reader.backlog(last)]
        backlog.sort(key=lambda record: record.get("predicted_at_ns", 0))
        yield from backlog[-last:] if last else []
        if follow:
            yield from (_decode(codec, message.value()) for message in reader.follow())
    finally:
        reader.close()


def _decode(codec: AvroCodec, value: bytes | None) -> dict[str, Any]:
    try:
        return codec.decode(value or b"")
    except MalformedMessageError as error:
        return {"error": str(error)}
