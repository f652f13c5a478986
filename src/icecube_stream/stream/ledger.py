"""Acknowledgements in offset order: a message is handed to Faust only after every earlier
message of its partition is finished.

Steps run concurrently, so frames of one partition finish out of order. Faust's commit
arithmetic (faust-streaming 0.15.3, `Consumer._new_offset`) commits past an unfinished message
when it sits right at the committed head and a later one is acknowledged (faust-streaming issue
#606); a crash then loses that message. Releasing only the contiguous finished prefix of each
partition means Faust never sees such a gap. Pure bookkeeping: the caller registers messages in
the order it took them from the stream, which per partition is offset order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable


class AckLedger:
    def __init__(self) -> None:
        #: Per partition, offset -> token of every message taken and not yet released.
        self._waiting: dict[int, OrderedDict[int, Hashable]] = {}
        self._where: dict[Hashable, tuple[int, int]] = {}
        self._finished: set[Hashable] = set()

    @property
    def held(self) -> int:
        """Messages finished but held back behind an unfinished earlier one."""
        return len(self._finished)

    @property
    def partitions(self) -> set[int]:
        return set(self._waiting)

    def taken(self, token: Hashable, partition: int, offset: int) -> None:
        """Register a message, in the order messages leave the stream (offset order)."""
        waiting = self._waiting.setdefault(partition, OrderedDict())
        if waiting and offset <= next(reversed(waiting)):
            raise ValueError(
                f"partition {partition}: offset {offset} registered after {next(reversed(waiting))}"
            )
        waiting[offset] = token
        self._where[token] = (partition, offset)

    def finish(self, tokens: Iterable[Hashable]) -> list[Hashable]:
        """Mark messages finished; the ones that may be acknowledged now, in offset order."""
        touched = set()
        for token in tokens:
            if token in self._where:  # unknown: its partition was revoked meanwhile
                self._finished.add(token)
                touched.add(self._where[token][0])
        released: list[Hashable] = []
        for partition in touched:
            waiting = self._waiting[partition]
            while waiting:
                offset, token = next(iter(waiting.items()))
                if token not in self._finished:
                    break
                del waiting[offset]
                self._finished.discard(token)
                del self._where[token]
                released.append(token)
        return released

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions this worker lost: the new owner reads them from the commit."""
        for partition in partitions:
            for token in self._waiting.pop(partition, OrderedDict()).values():
                self._where.pop(token, None)
                self._finished.discard(token)
