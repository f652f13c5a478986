"""Where results go, one sink per destination: predictions to Kafka (`kafka.KafkaPredictions`)
and MongoDB (`mongo.MongoPredictions`), the alerts among them to their topic
(`alerts.KafkaAlerts`, each once), refused input to the dead-letter topic
(`dead_letters.DeadLetters`).

Both prediction writes finish before the caller acknowledges the source messages, so a crash
between them means the events are processed again: Kafka may then carry a prediction twice
(at-least-once), MongoDB never does (documents keyed by event_id, see docs/streaming.md). Each
is written, and retried, on its own, so an outage of one does not repeat writes to the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from icecube_stream.stream.messages import Incoming, Rejection


class FatalKafkaError(RuntimeError):
    """A write Kafka refuses for good: the worker stops, and the messages are read again after
    the fix (nothing was acknowledged)."""


class Connected(Protocol):
    async def start(self) -> None:
        """Connect; safe to call again after a failure."""

    async def stop(self) -> None: ...


class PredictionSink(Connected, Protocol):
    """A destination of prediction records; `name` labels its metrics and log lines."""

    name: str

    async def write(self, records: list[dict[str, Any]], generation: int) -> None:
        """All of them, or raise: the caller retries the whole list. `generation` is the
        worker's fence generation when the step began (fence.py): a sink that must not write
        for events the worker no longer holds checks it."""


class DeadLetterSink(Connected, Protocol):
    async def dead_letter(self, message: Incoming, rejections: Sequence[Rejection]) -> None:
        """One record for the message, with every reason it was refused for."""
