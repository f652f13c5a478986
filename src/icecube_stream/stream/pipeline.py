"""One worker step: raw messages in, predictions written, the finished messages returned for ack.

Kept apart from Faust so the delivery logic reads in one place: a message is acknowledged only
when every event it carried has its prediction written or is refused. Refusals of a message are
collected and written as one dead-letter record, with every reason and event id, once nothing
else of the message is pending. Parts of split events keep their messages unacknowledged until
the event completes, so a crash at any moment replays them instead of losing them. Only a typed
refusal (the checks here, or the model server naming an event) dead-letters an event; every
other failure is retried until it goes away, or stops the worker when it never can.

Events stay columnar from the decoded frame to the model request (stream/events.py). The model
and the sinks are whatever satisfies `ModelBackend` and the sink protocols, so the logic here is
tested with fakes and run with the real clients.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import ParamSpec, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    wait_fixed,
)

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.stream.assembly import Assembler, Refused
from icecube_stream.stream.events import Events, Tokens, by_geometry
from icecube_stream.stream.fence import Fence
from icecube_stream.stream.messages import Incoming, Rejection
from icecube_stream.stream.model_client import GeometryRejectedError
from icecube_stream.stream.sinks import DeadLetterSink, FatalKafkaError, PredictionSink
from icecube_stream.stream.sinks.records import prediction_records
from icecube_stream.wire.codec import MalformedMessageError
from icecube_stream.wire.frame import PulseFrame, decode_frame
from icecube_stream.wire.model_api import PredictionBatch
from icecube_stream.wire.reasons import Reason
from icecube_stream.wire.topics import PULSES, topic_codec
from icecube_stream.wire.validation import Limits, check_events, repeated_entries

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 1.0
P = ParamSpec("P")
T = TypeVar("T")


class ModelBackend(Protocol):
    async def predict(self, frame: PulseFrame) -> PredictionBatch:
        """Directions for a frame of whole events, each id once; GeometryRejectedError when the
        model knows another detector."""


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        model: ModelBackend,
        sinks: Sequence[PredictionSink],
        dead_letters: DeadLetterSink,
        fence: Fence | None = None,
    ) -> None:
        self.settings = settings
        self.fence = fence or Fence()
        self.model = model
        self.sinks = sinks
        self.dead_letters = dead_letters
        self.codec = topic_codec(PULSES, settings.topics_dir)
        self.limits = Limits(
            settings.n_sensors, settings.max_event_pulses, settings.max_event_span_ns
        )
        self.assemblers: dict[int, Assembler] = {}
        self.messages: dict[Hashable, Incoming] = {}
        self.outstanding: dict[Hashable, int] = {}
        #: Refusals of each unfinished message, written as one DLQ record when it finishes.
        self.rejections: dict[Hashable, list[Rejection]] = {}
        self.unknown_geometry_sources: set[str] = set()
        self.model_slots = asyncio.Semaphore(settings.model_concurrency)

    async def step(self, incoming: Sequence[Incoming]) -> list[Hashable]:
        """Process a batch of messages; the tokens of messages that may now be acknowledged."""
        now = time.time_ns()
        generation = self.fence.generation
        finished: list[Hashable] = []
        ready: list[Events] = []
        for message in incoming:
            metrics.WORKER_FRAMES_IN.inc()
            self.messages[message.token] = message
            try:
                frame = decode_frame(message.value, self.codec)
            except MalformedMessageError as error:
                self.outstanding[message.token] = 1
                rejected = [Rejection(error.reason, error.detail)]
                finished += await self._refuse({message.token: rejected}, [message.token])
                continue
            if frame.geometry_id is None:
                self._unknown_geometry(frame.source)
            self.outstanding[message.token] = frame.n_events
            repeated = repeated_entries(frame.event_id, frame.part)
            skip = np.zeros(frame.n_events, np.bool_)
            skip[[problem.index for problem in repeated]] = True
            added = self._assembler(message.partition).add(frame, message.token, now, skip)
            ready += added.ready
            finished += await self._finish([message.token] * added.duplicates)
            refused = added.refused + self._split_across_partitions(frame, message.partition)
            finished += await self._reject(
                [(r.tokens, Rejection(r.reason, r.detail, r.event_id)) for r in refused]
            )
            if repeated:
                rejected = [Rejection(p.reason, p.detail, p.event_id) for p in repeated]
                entries = [message.token] * len(repeated)
                finished += await self._refuse({message.token: rejected}, entries)
        for assembler in self.assemblers.values():
            expired = assembler.expire(now)
            metrics.WORKER_INCOMPLETE.inc(len(expired))
            ready += expired
        metrics.WORKER_EVENTS_PENDING.set(sum(a.pending for a in self.assemblers.values()))
        if ready:
            finished += await self._process(by_geometry(ready), now, generation)
        return finished

    def _split_across_partitions(self, frame: PulseFrame, partition: int) -> list[Refused]:
        """Parts of one split event pending on two partitions can never be assembled (each
        worker holds only some): refuse all of them rather than predict two halves."""
        split = frame.n_parts > 1
        if not split.any():
            return []
        ids = set(frame.event_id[split].tolist())
        refused = []
        for other, assembler in self.assemblers.items():
            shared = ids & assembler.pending_ids() if other != partition else set()
            if shared:
                detail = f"parts of events {sorted(shared)[:5]} came on partitions {partition} "
                detail += f"and {other}; one event's parts must share a key"
                for side in (assembler, self.assemblers[partition]):
                    refused += side.refuse_pending(shared, Reason.PARTS_ACROSS_PARTITIONS, detail)
        return refused

    def _unknown_geometry(self, source: str) -> None:
        """Frames of the first schema version name no geometry: served as they are, counted,
        and warned about once per source."""
        metrics.WORKER_UNKNOWN_GEOMETRY.inc()
        if source not in self.unknown_geometry_sources:
            self.unknown_geometry_sources.add(source)
            log.warning(
                "frames from %r carry no geometry identity (an older emitter): they are "
                "predicted, but nothing checks that they come from the model's detector",
                source,
            )

    @property
    def partitions(self) -> set[int]:
        """Partitions with unfinished messages or pending parts here."""
        return {m.partition for m in self.messages.values()} | set(self.assemblers)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions this worker lost: their unacknowledged messages go to the new owner
        (steps still in flight may finish their events; those are then simply not acked)."""
        lost = set(partitions)
        for partition in lost:
            self.assemblers.pop(partition, None)
        for token in [t for t, m in self.messages.items() if m.partition in lost]:
            self.messages.pop(token)
            self.outstanding.pop(token, None)
            self.rejections.pop(token, None)

    def _assembler(self, partition: int) -> Assembler:
        if partition not in self.assemblers:
            timeout_ns = int(self.settings.assembly_timeout_s * 1e9)
            self.assemblers[partition] = Assembler(timeout_ns)
        return self.assemblers[partition]

    async def _process(
        self, batches: list[Events], assembled_at_ns: int, generation: int
    ) -> list[Hashable]:
        """Check each geometry's batch in one pass, then ask the model about the rest."""
        n_events = sum(batch.n_events for batch in batches)
        metrics.WORKER_EVENTS_IN.inc(n_events)
        metrics.WORKER_BATCH_EVENTS.observe(n_events)
        metrics.WORKER_EVENTS_IN_PROGRESS.inc(n_events)
        finished: list[Hashable] = []
        requests: list[Events] = []
        for batch in batches:
            verdict = check_events(
                batch.frame("worker", assembled_at_ns), self.limits, repeats_allowed=True
            )
            finished += await self._reject(
                [(batch.tokens[p.index], Rejection(p.reason, p.detail, p.event_id))
                 for p in verdict.problems]
            )  # fmt: skip
            requests += self._requests(batch, verdict.passed)
        results = await asyncio.gather(*(self._predict(request) for request in requests))
        answered = [pair for pairs, _ in results for pair in pairs]
        finished += [token for _, rejected in results for token in rejected]
        if answered:
            finished += await self._write(answered, assembled_at_ns, generation)
        metrics.WORKER_EVENTS_IN_PROGRESS.dec(n_events)
        return finished

    def _requests(self, batch: Events, passed: NDArray[np.bool_]) -> list[Events]:
        """Model requests of the events that passed, at most model_batch_events each and with
        each event id once (the answer is keyed by it; a replayed event may come twice in one
        step): the first copy of every id goes in the first round of requests, a second copy in
        the next. One copy of the arrays per request, none when it is the whole batch."""
        size = self.settings.model_batch_events
        valid = np.flatnonzero(passed)
        copy = _occurrence(batch.event_id[valid])
        requests = []
        for r in range(int(copy.max()) + 1 if valid.size else 0):
            members = valid[copy == r]
            for start in range(0, members.size, size):
                chunk = members[start : start + size]
                requests.append(batch if chunk.size == batch.n_events else batch.take(chunk))
        return requests

    async def _predict(
        self, events: Events
    ) -> tuple[list[tuple[Events, PredictionBatch]], list[Hashable]]:
        """Model answers for the events, and the finished tokens of events it refused by name;
        calls run concurrently up to model_concurrency, so the server can use both cores."""
        frame = events.frame("worker", time.time_ns())
        try:
            async with self.model_slots:
                answer = await self._retry_forever("model", self.model.predict, frame)
        except GeometryRejectedError as error:
            headers = (
                ("dlq.frame_geometry", error.rejection.frame_geometry),
                ("dlq.model_geometry", error.rejection.model_geometry),
            )
            return [], await self._reject(
                [(tokens, Rejection(Reason.GEOMETRY_MISMATCH, str(error), event_id, headers))
                 for event_id, tokens in zip(events.event_id.tolist(), events.tokens, strict=True)]
            )  # fmt: skip
        position = {event_id: k for k, event_id in enumerate(events.event_id.tolist())}
        finished = await self._reject(
            [(events.tokens[position[p.event_id]], Rejection(p.reason, p.detail, p.event_id))
             for p in answer.refused]
        )  # fmt: skip
        if not answer.n_events:
            return [], finished
        served = events.take(np.array([position[e] for e in answer.event_id.tolist()], np.intp))
        return [(served, answer)], finished

    async def _write(
        self,
        answered: list[tuple[Events, PredictionBatch]],
        assembled_at_ns: int,
        generation: int,
    ) -> list[Hashable]:
        predicted_at = time.time_ns()
        records = [
            record
            for events, answer in answered
            for record in prediction_records(events, answer, assembled_at_ns, predicted_at)
        ]
        await asyncio.gather(  # each sink retried on its own: one outage repeats no other write
            *(
                self._retry_forever(sink.name, sink.write, records, generation)
                for sink in self.sinks
            )
        )
        written = time.time_ns()
        for events, _ in answered:
            emitted = events.emitted_at_ns
            known = (emitted > 0) & (emitted <= written)  # 0 or a clock ahead of ours: unknown
            for seconds in ((written - emitted[known]) / 1e9).tolist():
                metrics.PIPELINE_LATENCY.observe(seconds)
            metrics.WORKER_BAD_EMIT_TIME.inc(int((~known).sum()))
            metrics.WORKER_EVENTS_OUT.inc(events.n_events)
        metrics.WORKER_LAST_PROCESSED.set(written / 1e9)
        return await self._finish(t for events, _ in answered for t in events.entries())

    async def _reject(self, refused: Sequence[tuple[Tokens, Rejection]]) -> list[Hashable]:
        """Record each refusal against every message it came in; finish its entries."""
        by_message: dict[Hashable, list[Rejection]] = {}
        for tokens, rejection in refused:
            for token in dict.fromkeys(tokens):
                by_message.setdefault(token, []).append(rejection)
        return await self._refuse(by_message, [t for tokens, _ in refused for t in tokens])

    async def _refuse(
        self, by_message: dict[Hashable, list[Rejection]], entries: Iterable[Hashable]
    ) -> list[Hashable]:
        """Keep the refusals for each message's DLQ record, then finish the refused entries."""
        for token, rejections in by_message.items():
            if token in self.outstanding:  # else revoked: the new owner handles it again
                self.rejections.setdefault(token, []).extend(rejections)
        return await self._finish(entries)

    async def _finish(self, tokens: Iterable[Hashable]) -> list[Hashable]:
        """Count down each message's unfinished entries; those reaching zero are done, after
        their refusals, if any, are in the dead-letter topic as one record."""
        done = []
        for token in tokens:
            if token not in self.outstanding:
                continue  # revoked while in flight: not ours to acknowledge any more
            self.outstanding[token] -= 1
            if self.outstanding[token] == 0:
                del self.outstanding[token]
                message = self.messages.pop(token)
                rejections = self.rejections.pop(token, None)
                if rejections:
                    await self._retry_forever(
                        "dlq", self.dead_letters.dead_letter, message, rejections
                    )
                done.append(token)
        return done

    async def _retry_forever(
        self, what: str, call: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Keep the events and try again while a dependency is down: waiting beats dropping.
        A typed refusal is an answer, and a Kafka error that can never succeed stops the worker
        (crash-only: the messages are read again after the fix)."""

        def failed(attempt: RetryCallState) -> None:
            metrics.WORKER_WRITE_FAILURES.labels(sink=what).inc()
            error = attempt.outcome.exception() if attempt.outcome else None
            log.warning("%s failed, retrying in %.0f s: %s", what, RETRY_PAUSE_S, error)

        retrying = AsyncRetrying(
            # Exception, not BaseException: a cancelled step must stop, not retry.
            retry=retry_if_exception_type(Exception)
            & retry_if_not_exception_type((GeometryRejectedError, FatalKafkaError)),
            wait=wait_fixed(RETRY_PAUSE_S),
            before_sleep=failed,
            reraise=True,
        )
        return await retrying(call, *args, **kwargs)


def _occurrence(event_id: NDArray[np.int64]) -> NDArray[np.int64]:
    """For each event, how many earlier events of the batch have its id (0 for the first)."""
    order = np.argsort(event_id, kind="stable")
    ordered = event_id[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    run_start = np.repeat(starts, np.diff(np.concatenate([starts, [ordered.size]])))
    occurrence = np.empty_like(event_id)
    occurrence[order] = np.arange(ordered.size) - run_start
    return occurrence
