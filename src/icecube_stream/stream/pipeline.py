"""One worker step: raw messages in, predictions written, the finished messages returned for ack.

Kept apart from Faust so the delivery logic reads in one place: a message is acknowledged only
when every event it carried has its prediction written or is refused. Refusals of a message are
collected and written as one dead-letter record, with every reason and event id, once nothing
else of the message is pending. Parts of split events keep their messages unacknowledged until
the event completes, so a crash at any moment replays them instead of losing them. Only a typed
refusal (the checks here, or the model server naming an event) dead-letters an event; every
other failure is retried until it goes away, or stops the worker when it never can.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Iterable, Sequence

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.stream.assembly import Assembler, Event, Refused
from icecube_stream.stream.model_client import GeometryRejectedError, ModelClient, request_frame
from icecube_stream.stream.sinks import (
    FatalKafkaError,
    Incoming,
    Rejection,
    Sinks,
    prediction_records,
)
from icecube_stream.wire.codec import MalformedMessageError
from icecube_stream.wire.frame import PulseFrame, decode_frame
from icecube_stream.wire.model_api import PredictionBatch
from icecube_stream.wire.reasons import Reason
from icecube_stream.wire.topics import PULSES, topic_codec
from icecube_stream.wire.validation import Limits, event_problems, repeated_entries

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 1.0


class Pipeline:
    def __init__(self, settings: Settings, model: ModelClient, sinks: Sinks) -> None:
        self.settings = settings
        self.model = model
        self.sinks = sinks
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
        finished: list[Hashable] = []
        ready: list[Event] = []
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
            skip = {problem.index for problem in repeated}
            added = self._assembler(message.partition).add(frame, message.token, now, skip)
            ready += added.ready
            finished += await self._finish([message.token] * added.duplicates)
            refused = added.refused + self._split_across_partitions(frame, message.partition)
            finished += await self._reject(
                [(r.piece, Rejection(r.reason, r.detail, r.piece.event_id)) for r in refused]
            )
            if repeated:
                rejected = [Rejection(p.reason, p.detail, p.event_id) for p in repeated]
                entries = [message.token] * len(skip)
                finished += await self._refuse({message.token: rejected}, entries)
        for assembler in self.assemblers.values():
            expired = assembler.expire(now)
            metrics.WORKER_INCOMPLETE.inc(len(expired))
            ready += expired
        metrics.WORKER_EVENTS_PENDING.set(sum(a.pending for a in self.assemblers.values()))
        if ready:
            finished += await self._process(ready, now)
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

    async def _process(self, events: list[Event], assembled_at_ns: int) -> list[Hashable]:
        metrics.WORKER_EVENTS_IN.inc(len(events))
        metrics.WORKER_BATCH_EVENTS.observe(len(events))
        metrics.WORKER_EVENTS_IN_PROGRESS.inc(len(events))
        batch = request_frame(events)
        problems = event_problems(
            batch.event_id, batch.sensor_id, batch.time, batch.charge, batch.offsets, self.limits
        )
        refused = {problem.index for problem in problems}
        finished = await self._reject(
            [(events[p.index], Rejection(p.reason, p.detail, p.event_id)) for p in problems]
        )
        valid = [event for k, event in enumerate(events) if k not in refused]
        results = await asyncio.gather(*(self._predict(chunk) for chunk in self._requests(valid)))
        answered = [pair for pairs, _ in results for pair in pairs]
        finished += [token for _, rejected in results for token in rejected]
        if answered:
            finished += await self._write(answered, assembled_at_ns)
        metrics.WORKER_EVENTS_IN_PROGRESS.dec(len(events))
        return finished

    def _requests(self, events: list[Event]) -> list[list[Event]]:
        """Model requests of at most model_batch_events, each of one geometry (so the server can
        refuse a detector whole) and with each event id once (the answer is keyed by it; a
        replayed event may come twice in one step)."""
        groups: list[tuple[str | None, set[int], list[Event]]] = []
        for event in events:
            group = next(
                (g for g in groups if g[0] == event.geometry_id and event.event_id not in g[1]),
                None,
            )
            if group is None:
                group = (event.geometry_id, set(), [])
                groups.append(group)
            group[1].add(event.event_id)
            group[2].append(event)
        size = self.settings.model_batch_events
        return [chunk[i : i + size] for _, _, chunk in groups for i in range(0, len(chunk), size)]

    async def _predict(
        self, events: list[Event]
    ) -> tuple[list[tuple[list[Event], PredictionBatch]], list[Hashable]]:
        """Model answers for the events, and the finished tokens of events it refused by name;
        calls run concurrently up to model_concurrency, so the server can use both cores."""
        try:
            async with self.model_slots:
                answer = await self._retry_forever("model", self.model.predict, events)
        except GeometryRejectedError as error:
            headers = (
                ("dlq.frame_geometry", error.rejection.frame_geometry),
                ("dlq.model_geometry", error.rejection.model_geometry),
            )
            return [], await self._reject(
                [(e, Rejection(Reason.GEOMETRY_MISMATCH, str(error), e.event_id, headers))
                 for e in events]
            )  # fmt: skip
        by_id = {event.event_id: event for event in events}
        finished = await self._reject(
            [(by_id[p.event_id], Rejection(p.reason, p.detail, p.event_id))
             for p in answer.refused]
        )  # fmt: skip
        served = [by_id[event_id] for event_id in answer.event_id.tolist()]
        return ([(served, answer)] if served else []), finished

    async def _write(
        self, answered: list[tuple[list[Event], PredictionBatch]], assembled_at_ns: int
    ) -> list[Hashable]:
        predicted_at = time.time_ns()
        records = [
            record
            for events, answer in answered
            for record in prediction_records(events, answer, assembled_at_ns, predicted_at)
        ]
        await asyncio.gather(  # each sink retried on its own: one outage repeats no other write
            self._retry_forever("kafka", self.sinks.to_kafka, records),
            self._retry_forever("mongo", self.sinks.to_mongo, records),
        )
        written = time.time_ns()
        events = [event for chunk, _ in answered for event in chunk]
        for event in events:
            if 0 < event.emitted_at_ns <= written:  # 0 or a clock ahead of ours: no latency
                metrics.PIPELINE_LATENCY.observe((written - event.emitted_at_ns) / 1e9)
            else:
                metrics.WORKER_BAD_EMIT_TIME.inc()
        metrics.WORKER_EVENTS_OUT.inc(len(events))
        metrics.WORKER_LAST_PROCESSED.set(written / 1e9)
        return await self._finish(t for e in events for t in e.tokens)

    async def _reject(self, refused: Sequence[tuple[Event, Rejection]]) -> list[Hashable]:
        """Record each event's refusal against every message it came in; finish its entries."""
        by_message: dict[Hashable, list[Rejection]] = {}
        for event, rejection in refused:
            for token in dict.fromkeys(event.tokens):
                by_message.setdefault(token, []).append(rejection)
        return await self._refuse(by_message, [t for e, _ in refused for t in e.tokens])

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
                    await self._retry_forever("dlq", self.sinks.dead_letter, message, rejections)
                done.append(token)
        return done

    async def _retry_forever(self, what: str, call, *args):  # type: ignore[no-untyped-def]
        """Keep the events and try again while a dependency is down: waiting beats dropping.
        A typed refusal is an answer, and a Kafka error that can never succeed stops the worker
        (crash-only: the messages are read again after the fix)."""
        while True:
            try:
                return await call(*args)
            except (GeometryRejectedError, FatalKafkaError):
                raise
            except Exception as error:  # unavailable model, Kafka and MongoDB client errors
                problem = error
            metrics.WORKER_WRITE_FAILURES.labels(sink=what).inc()
            log.warning("%s failed, retrying in %.0f s: %s", what, RETRY_PAUSE_S, problem)
            await asyncio.sleep(RETRY_PAUSE_S)
