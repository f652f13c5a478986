"""One worker step: raw messages in, predictions written, the finished messages returned for ack.

Kept apart from Faust so the delivery logic reads in one place: a message is acknowledged only
when every event it carried has its prediction written or sits in the dead-letter topic. Parts
of split events keep their messages unacknowledged until the event completes, so a crash at any
moment replays them instead of losing them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Iterable, Sequence

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.stream.assembly import Assembler, Event
from icecube_stream.stream.frames import decode_frame
from icecube_stream.stream.model_client import (
    GeometryRejectedError,
    ModelAnswer,
    ModelClient,
    ModelRequestRejectedError,
)
from icecube_stream.stream.schemas import PULSES, AvroCodec, MalformedMessageError, topic_specs
from icecube_stream.stream.sinks import Incoming, Sinks, prediction_records
from icecube_stream.stream.validation import rejection

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 1.0


class Pipeline:
    def __init__(self, settings: Settings, model: ModelClient, sinks: Sinks) -> None:
        self.settings = settings
        self.model = model
        self.sinks = sinks
        self.codec = AvroCodec.for_topic(topic_specs(settings.topics_dir)[PULSES])
        self.assemblers: dict[int, Assembler] = {}
        self.messages: dict[Hashable, Incoming] = {}
        self.outstanding: dict[Hashable, int] = {}
        #: Reasons each unfinished message was dead-lettered for: one record per message and
        #: reason, however many of its events (or requests) share it.
        self.dead_lettered: dict[Hashable, set[str]] = {}
        self.unknown_geometry_sources: set[str] = set()
        self.model_slots = asyncio.Semaphore(settings.model_concurrency)

    async def step(self, incoming: Sequence[Incoming]) -> list[Hashable]:
        """Process a batch of messages; the tokens of messages that may now be acknowledged."""
        now = time.time_ns()
        finished: list[Hashable] = []
        ready: list[Event] = []
        for message in incoming:
            metrics.WORKER_FRAMES_IN.inc()
            try:
                frame = decode_frame(message.value, self.codec)
            except MalformedMessageError as error:
                await self._retry_forever("dlq", self.sinks.dead_letter, message, error.reason,
                                          error.detail)  # fmt: skip
                finished.append(message.token)
                continue
            if frame.geometry_id is None:
                self._unknown_geometry(frame.source)
            self.messages[message.token] = message
            self.outstanding[message.token] = frame.n_events
            events, duplicates = self._assembler(message.partition).add(frame, message.token, now)
            ready += events
            finished += self._finish_entries([message.token] * duplicates)
        for assembler in self.assemblers.values():
            expired = assembler.expire(now)
            metrics.WORKER_INCOMPLETE.inc(len(expired))
            ready += expired
        metrics.WORKER_EVENTS_PENDING.set(sum(a.pending for a in self.assemblers.values()))
        if ready:
            finished += await self._process(ready, now)
        return finished

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

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions this worker lost: their unacknowledged messages go to the new owner
        (steps still in flight may finish their events; those are then simply not acked)."""
        lost = set(partitions)
        for partition in lost:
            self.assemblers.pop(partition, None)
        for token in [t for t, m in self.messages.items() if m.partition in lost]:
            self.messages.pop(token)
            self.outstanding.pop(token, None)
            self.dead_lettered.pop(token, None)

    def _assembler(self, partition: int) -> Assembler:
        if partition not in self.assemblers:
            timeout_ns = int(self.settings.assembly_timeout_s * 1e9)
            self.assemblers[partition] = Assembler(timeout_ns)
        return self.assemblers[partition]

    async def _process(self, events: list[Event], assembled_at_ns: int) -> list[Hashable]:
        metrics.WORKER_EVENTS_IN.inc(len(events))
        metrics.WORKER_BATCH_EVENTS.observe(len(events))
        metrics.WORKER_EVENTS_IN_PROGRESS.inc(len(events))
        valid: list[Event] = []
        invalid: dict[str, list[tuple[Event, str]]] = {}
        finished: list[Hashable] = []
        for event in events:
            problem = rejection(event, self.settings.n_sensors, self.settings.max_event_pulses)
            if problem is None:
                valid.append(event)
            else:
                invalid.setdefault(problem[0], []).append((event, problem[1]))
        for reason, refused in invalid.items():
            details = "; ".join(detail for _, detail in refused)
            finished += await self._reject([event for event, _ in refused], reason, details)
        # One request holds events of one geometry, so the server can refuse a detector whole.
        by_geometry: dict[str | None, list[Event]] = {}
        for event in valid:
            by_geometry.setdefault(event.geometry_id, []).append(event)
        size = self.settings.model_batch_events
        chunks = [
            group[start : start + size]
            for group in by_geometry.values()
            for start in range(0, len(group), size)
        ]
        results = await asyncio.gather(*(self._predict(chunk) for chunk in chunks))
        answered = [pair for pairs, _ in results for pair in pairs]
        finished += [token for _, rejected in results for token in rejected]
        if answered:
            finished += await self._write(answered, assembled_at_ns)
        metrics.WORKER_EVENTS_IN_PROGRESS.dec(len(events))
        return finished

    async def _predict(
        self, events: list[Event]
    ) -> tuple[list[tuple[list[Event], ModelAnswer]], list[Hashable]]:
        """Model answers for the events, and the finished tokens of events it refused; calls
        run concurrently up to model_concurrency, so the server can use both cores."""
        try:
            async with self.model_slots:
                answer = await self._retry_forever("model", self.model.predict, events)
        except GeometryRejectedError as error:
            hashes = (
                ("dlq.frame_geometry", error.frame_geometry),
                ("dlq.model_geometry", error.model_geometry),
            )
            return [], await self._reject(events, "geometry-mismatch", str(error), hashes)
        except ModelRequestRejectedError as error:
            if len(events) == 1:
                return [], await self._reject(events, "model-rejected", str(error))
            half = len(events) // 2  # find the offending event(s) without losing the rest
            first, second = await self._predict(events[:half]), await self._predict(events[half:])
            return first[0] + second[0], first[1] + second[1]
        return [(events, answer)], []

    async def _write(
        self, answered: list[tuple[list[Event], ModelAnswer]], assembled_at_ns: int
    ) -> list[Hashable]:
        predicted_at = time.time_ns()
        records = [
            record
            for events, answer in answered
            for record in prediction_records(events, answer, assembled_at_ns, predicted_at)
        ]
        await self._retry_forever("predictions", self.sinks.write_predictions, records)
        written = time.time_ns()
        events = [event for chunk, _ in answered for event in chunk]
        for event in events:
            metrics.PIPELINE_LATENCY.observe(max(0, written - event.emitted_at_ns) / 1e9)
        metrics.WORKER_EVENTS_OUT.inc(len(events))
        metrics.WORKER_LAST_PROCESSED.set(written / 1e9)
        return self._finish_entries(t for e in events for t in e.tokens)

    async def _reject(
        self,
        events: list[Event],
        reason: str,
        detail: str,
        headers: Sequence[tuple[str, str]] = (),
    ) -> list[Hashable]:
        """Dead-letter the messages the events came in (one record per message and reason)."""
        event_ids: dict[Hashable, list[int]] = {}
        for event in events:
            for token in event.tokens:
                event_ids.setdefault(token, []).append(event.event_id)
        for token, ids in event_ids.items():
            message = self.messages.get(token)
            if message is None:
                continue  # its partition was revoked: the new owner handles it again
            reasons = self.dead_lettered.setdefault(token, set())
            if reason in reasons:
                continue
            await self._retry_forever("dlq", self.sinks.dead_letter, message, reason, detail,
                                      ids, headers)  # fmt: skip
            reasons.add(reason)
        return self._finish_entries(t for e in events for t in e.tokens)

    def _finish_entries(self, tokens: Iterable[Hashable]) -> list[Hashable]:
        """Count down each message's unfinished entries; those reaching zero are done."""
        done = []
        for token in tokens:
            if token not in self.outstanding:
                continue  # revoked while in flight: not ours to acknowledge any more
            self.outstanding[token] -= 1
            if self.outstanding[token] == 0:
                del self.outstanding[token]
                del self.messages[token]
                self.dead_lettered.pop(token, None)
                done.append(token)
        return done

    async def _retry_forever(self, what: str, call, *args):  # type: ignore[no-untyped-def]
        """Keep the events and try again while a dependency is down: waiting beats dropping."""
        while True:
            try:
                return await call(*args)
            except ModelRequestRejectedError:
                raise
            except Exception as error:  # unavailable model, Kafka and MongoDB client errors
                problem = error
            metrics.WORKER_WRITE_FAILURES.labels(sink=what).inc()
            log.warning("%s failed, retrying in %.0f s: %s", what, RETRY_PAUSE_S, problem)
            await asyncio.sleep(RETRY_PAUSE_S)
