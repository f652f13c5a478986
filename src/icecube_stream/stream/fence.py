"""The line between this worker's hold on its messages and the next owner's.

Faust hands a revoked partition's unfinished messages to the next owner without waiting for the
steps that hold them (`stream_wait_empty` off, app.py), and those steps still write. Predictions
written twice are tolerated (at-least-once, keyed by event id); an alert is not, and two workers
sending the same one at the same moment would both find it unsent. A rebalance cannot complete
before this worker's revocation handler returns, so that handler closes the fence: it waits for
a send in progress, and every step that started before it finds the fence closed and sends
nothing; the next owner processes those events again and finds their alerts sent or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Fence:
    def __init__(self) -> None:
        #: Counts revocations; a step remembers the value it started under.
        self.generation = 0
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def holding(self, generation: int) -> AsyncIterator[bool]:
        """True while nothing was revoked since `generation`; the fence stays put until the
        block ends, so what the block sends is out before a revocation completes."""
        async with self._lock:
            yield generation == self.generation

    async def close(self) -> None:
        """Revoke every step started so far, once the send in progress, if any, is done."""
        async with self._lock:
            self.generation += 1
