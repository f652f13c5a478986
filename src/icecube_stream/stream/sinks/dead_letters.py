"""The dead-letter topic as a sink: each refused message once, with every reason it was refused for.

A record keeps the message's original key and bytes (truncated, with their length and SHA-256 in
headers, when they would not fit), so `dlq replay` can send it back unchanged after the fix.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.stream.messages import Incoming, Rejection
from icecube_stream.stream.sinks import FatalKafkaError
from icecube_stream.stream.sinks.kafka import NEVER_SUCCEEDS, KafkaSink
from icecube_stream.wire.topics import DLQ, topic_specs

#: Bytes of each free-text DLQ header (details, event ids): bounded so that a message refused for
#: thousands of events still fits in one record.
HEADER_LIMIT = 4096
#: Room the headers and the record's framing take beside a value that must be truncated.
DLQ_OVERHEAD = 32 * 1024


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


class DeadLetters(KafkaSink):
    def __init__(self, settings: Settings) -> None:
        max_bytes = topic_specs(settings.topics_dir)[DLQ].config.get("max.message.bytes")
        self.max_bytes = int(max_bytes or 1_048_576)
        super().__init__(settings, max_request_size=self.max_bytes)
        self.topic = settings.topic(DLQ)

    async def dead_letter(self, message: Incoming, rejections: Sequence[Rejection]) -> None:
        """One record per message: its original key and bytes (truncated, with their length
        and SHA-256 in headers, when they would not fit) and every reason it was refused for."""
        value = message.value
        if len(value) + len(message.key or b"") > self.max_bytes - DLQ_OVERHEAD:
            value = value[: max(0, self.max_bytes - DLQ_OVERHEAD - len(message.key or b""))]
        headers = dlq_headers(message, rejections, value)
        try:
            delivery = await self.producer.send(self.topic, value, key=message.key, headers=headers)
            await delivery
        except NEVER_SUCCEEDS as error:
            raise FatalKafkaError(f"Kafka refuses this DLQ record for good: {error!r}") from error
        for reason in dict.fromkeys(r.reason for r in rejections):
            metrics.WORKER_DLQ.labels(reason=reason).inc()
