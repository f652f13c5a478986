"""What the worker's pipeline takes in and what it refuses with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Incoming:
    """One raw message as the worker received it; token is what acknowledges it."""

    token: Any
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Rejection:
    """Why a message, or one event of it, is refused; headers travel to its DLQ record."""

    reason: str  # a wire.reasons.Reason
    detail: str
    event_id: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
