"""`icecube-stream chaos`: faults that hit work in flight, on the live stack, while events flow;
then a count of what every sink received.

Like `bench`, a run has its own topics, consumer group, collection, model server and worker.
Events flow at the offered rate the whole time (fresh ids, looping over a simulated pool), and
the faults come one after another:
- the worker SIGKILLed at random moments, each time only once its own metrics show events in
  progress or messages held back (work in flight), and restarted at once;
- the Kafka broker SIGKILLed and restarted;
- MongoDB (FerretDB) SIGKILLed and down for a while;
- the model server SIGKILLed (its whole process tree) and down past the client's retry budget;
- a second worker joining and, a while later, leaving;
- the poison corpus (`stream/poison.py`) written straight to the raw topic.
Afterwards, per fault, over the events emitted from its start to the next one's: how many have
no prediction (lost), MongoDB documents and predictions-topic records beyond one per event, dead
letters by reason, and the seconds from the fault's end until the backlog (emitted but not yet
written) was back to where it stood before the fault.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import numpy as np
from confluent_kafka import Consumer, Producer
from pymongo import MongoClient

from icecube_stream.config import Settings
from icecube_stream.events.format import EventBatch, take_events
from icecube_stream.observe.http import metric_value
from icecube_stream.stack import manager, process
from icecube_stream.stack.ports import is_listening
from icecube_stream.stream import topics
from icecube_stream.stream.bench import COMPONENTS, delete_topics, free_port, private_pipeline
from icecube_stream.stream.emitter import EmitReport, emit
from icecube_stream.stream.poison import INCOMPLETE, PREDICTED, Poison, corpus
from icecube_stream.stream.schemas import DLQ, PREDICTIONS, PULSES, AvroCodec, topic_specs

Say = Callable[[str], None]
ID_STRIDE = 10**9  # each pass over the pool shifts its ids by this much
IN_FLIGHT = ("icecube_worker_events_in_progress", "icecube_worker_messages_held",
             "icecube_worker_events_pending")  # fmt: skip
RECOVERY_GOAL_S = 30.0


@dataclass(frozen=True)
class Plan:
    worker_kills: int = 10
    kafka_down_s: float = 5.0
    mongo_down_s: float = 30.0
    model_down_s: float = 90.0
    second_worker_s: float = 20.0
    settle_s: float = 25.0  # traffic alone after each fault, to recover before the next


@dataclass
class Row:
    fault: str
    started_ns: int
    ended_ns: int
    in_flight: str = "-"
    events: int = 0
    lost: int = 0
    mongo_duplicates: int = 0
    topic_duplicates: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    recovered_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault, "in_flight": self.in_flight, "events": self.events,
            "lost": self.lost, "mongo_duplicates": self.mongo_duplicates,
            "topic_duplicates": self.topic_duplicates, "dead_letters": self.dead_letters,
            "recovered_s": None if self.recovered_s is None else round(self.recovered_s, 1),
        }  # fmt: skip


@dataclass
class Outcome:
    rows: list[Row]
    poison_mismatches: list[str]
    emitter_failed_events: int

    @property
    def ok(self) -> bool:
        return not self.poison_mismatches and all(
            r.lost == 0 and r.mongo_duplicates == 0
            and r.recovered_s is not None and r.recovered_s <= RECOVERY_GOAL_S
            for r in self.rows
        )  # fmt: skip


class Traffic(threading.Thread):
    """The pool's events at a fixed rate until stopped, ids shifted on every pass; remembers
    when each tenth of a second's events left."""

    def __init__(self, settings: Settings, pool: EventBatch, rate_hz: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.pool, self.rate_hz = settings, pool, rate_hz
        self.report = EmitReport()
        self.chunks: list[tuple[int, np.ndarray[Any, Any]]] = []  # (emitted at ns, ids)
        self.stopping = threading.Event()

    def run(self) -> None:
        self.report = emit(self.settings, self._batches(), rate_hz=self.rate_hz)

    def _batches(self) -> Iterator[tuple[str, EventBatch]]:
        size = max(1, int(self.rate_hz / 10))
        for shift in range(0, 1 << 62, ID_STRIDE):
            for first in range(0, self.pool.n_events, size):
                if self.stopping.is_set():
                    return
                chunk = take_events(self.pool, first, min(first + size, self.pool.n_events))
                chunk = replace(chunk, event_id=chunk.event_id + shift)
                self.chunks.append((time.time_ns(), chunk.event_id))
                yield "chaos", chunk


class Chaos:
    def __init__(self, settings: Settings, pool: EventBatch, say: Say, seed: int = 0) -> None:
        self.base, self.pool, self.say = settings, pool, say
        self.random = random.Random(seed)
        self.settings = private_pipeline(settings, "chaos", assembly_timeout_s=10.0)
        self.rows: list[Row] = []

    def run(self, plan: Plan, rate_hz: float) -> Outcome:
        topics.apply(self.settings)
        self.say("starting a private model server and worker")
        manager.up(self.settings, COMPONENTS, report=lambda _: None)
        traffic = Traffic(self.settings, self.pool, rate_hz)
        try:
            traffic.start()
            time.sleep(plan.settle_s)
            for _ in range(plan.worker_kills):
                self._fault("worker SIGKILL", self._kill_worker)
                time.sleep(plan.settle_s + self.random.uniform(0.0, 3.0))  # at random moments
            outages = [
                ("Kafka broker SIGKILL", self.base, "kafka", plan.kafka_down_s),
                ("MongoDB SIGKILL", self.base, "mongo", plan.mongo_down_s),
                ("model server SIGKILL", self.settings, "model-server", plan.model_down_s),
            ]
            for name, owner, service, down_s in outages:
                self._fault(name, functools.partial(self._outage, owner, service, down_s))
                time.sleep(plan.settle_s)
            self._fault(
                "a second worker joins and leaves",
                lambda: self._second_worker(plan.second_worker_s),
            )
            time.sleep(plan.settle_s)
            spec = self._spec(PULSES)
            poisons = corpus(
                self.pool,
                AvroCodec.for_topic(spec),
                7 * 10**17,
                int(spec.config["max.message.bytes"]),
                self.settings.assembly_timeout_s,
            )
            self._fault("poison corpus", lambda: self._poison(poisons))
            time.sleep(plan.settle_s)
            traffic.stopping.set()
            traffic.join(timeout=120)
            self.say("waiting for every event to be written")
            self._drain(traffic)
            return self._count(traffic, poisons, rate_hz)
        finally:
            traffic.stopping.set()
            manager.down(self.settings, COMPONENTS, report=lambda _: None)
            manager.up(self.base, ["kafka", "mongo"], report=lambda _: None)
            MongoClient(self.base.mongo_url)[self.base.mongo_database].drop_collection(
                self.settings.mongo_collection
            )
            delete_topics(self.settings)

    # ------------------------------------------------------------------ faults

    def _fault(self, name: str, apply: Callable[[], str | None]) -> None:
        started = time.time_ns()
        self.say(f"fault: {name}")
        in_flight = apply()
        self.rows.append(Row(name, started, time.time_ns(), in_flight or "-"))

    def _kill_worker(self) -> str:
        """SIGKILL once the worker holds work: what its metrics showed just before."""
        url = self.settings.worker_metrics_url
        deadline = time.monotonic() + 30
        while True:
            try:
                held = {name: metric_value(url, name) for name in IN_FLIGHT}
            except httpx.HTTPError:  # restarting still
                held = {}
            if any(held.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        _kill(self.settings, "worker")
        manager.up(self.settings, ["worker"], report=lambda _: None)
        shown = {name.removeprefix("icecube_worker_"): int(v) for name, v in held.items() if v}
        return ", ".join(f"{k} {v}" for k, v in shown.items()) or "none seen"

    def _outage(self, owner: Settings, name: str, down_s: float) -> None:
        _kill(owner, name)
        time.sleep(down_s)
        manager.up(owner, [name], report=lambda _: None)

    def _second_worker(self, hold_s: float) -> None:
        second = self.settings.model_copy(
            update={
                "state_dir": self.settings.state_dir / "second",
                "worker_web_port": free_port(),
            }
        )
        manager.up(second, ["worker"], report=lambda _: None)
        time.sleep(hold_s)
        manager.down(second, ["worker"], report=lambda _: None)

    def _poison(self, poisons: list[Poison]) -> str:
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap, "acks": "all",
                             "message.max.bytes": 16 << 20})  # fmt: skip
        topic = self.settings.topic(PULSES)
        for number, poison in enumerate(poisons):
            time.sleep(poison.after_s)
            producer.produce(topic, poison.value, poison.key(number), partition=poison.partition)
            producer.flush(30)
        return f"{len(poisons)} messages of {len({p.kind for p in poisons})} kinds"

    # ------------------------------------------------------------------ counting

    def _spec(self, name: str) -> Any:
        return topic_specs(self.settings.topics_dir)[name]

    def _drain(self, traffic: Traffic, timeout_s: float = 600) -> None:
        wanted = sum(ids.size for _, ids in traffic.chunks)
        collection = self._collection()
        deadline = time.monotonic() + timeout_s
        last, still = -1, time.monotonic()
        while time.monotonic() < deadline:
            count = collection.estimated_document_count()
            if count >= wanted:
                return
            if count != last:
                last, still = count, time.monotonic()
            elif time.monotonic() - still > 60:
                return  # nothing new for a minute: what is missing is lost
            time.sleep(1)

    def _collection(self) -> Any:
        mongo: MongoClient[dict[str, Any]] = MongoClient(self.base.mongo_url)
        return mongo[self.base.mongo_database][self.settings.mongo_collection]

    def _count(self, traffic: Traffic, poisons: list[Poison], rate_hz: float) -> Outcome:
        documents = list(self._collection().find({}, {"_id": 1, "written_at_ns": 1, "flags": 1}))
        stored = Counter(d["_id"] for d in documents)
        on_topic = _keys(self.settings, self.settings.topic(PREDICTIONS))
        dead = _dead_letters(self.settings)
        emitted_at = np.array([at for at, ids in traffic.chunks for _ in ids], np.int64)
        emitted_ids = np.concatenate([ids for _, ids in traffic.chunks])
        written_at = np.sort(np.array([d["written_at_ns"] for d in documents], np.int64))
        ends = [r.started_ns for r in self.rows[1:]] + [int(emitted_at.max()) + 1]
        for row, until in zip(self.rows, ends, strict=True):
            mine = emitted_ids[(emitted_at >= row.started_ns) & (emitted_at < until)].tolist()
            row.events = len(mine)
            row.lost = sum(1 for e in mine if e not in stored)
            row.mongo_duplicates = sum(stored[e] - 1 for e in mine if stored[e] > 1)
            row.topic_duplicates = sum(on_topic[str(e)] - 1 for e in mine if on_topic[str(e)] > 1)
            row.recovered_s = _recovery(row, until, emitted_at, written_at, rate_hz)
        self.rows[-1].dead_letters = dict(Counter(r for rs in dead.values() for r in rs))
        flags = {d["_id"]: d.get("flags", []) for d in documents}
        return Outcome(self.rows, _poison_mismatches(poisons, dead, flags),
                       traffic.report.failed_events)  # fmt: skip


def _recovery(row: Row, until_ns: int, emitted: np.ndarray[Any, Any],
              written: np.ndarray[Any, Any], rate_hz: float) -> float | None:  # fmt: skip
    """Seconds from the fault's end until the backlog (emitted, not yet written) is back to
    its level before the fault, plus half a second of traffic; None if not before the next
    fault (or the end of the run)."""
    emitted = np.sort(emitted)

    def backlog(t: int) -> int:
        return int(np.searchsorted(emitted, t, "right") - np.searchsorted(written, t, "right"))

    step = 250_000_000
    before = [backlog(t) for t in range(row.started_ns - 3 * 10**9, row.started_ns, step)]
    level = float(np.median(before)) + rate_hz * 0.5
    last = max(until_ns, int(written.max())) if until_ns > emitted.max() else until_ns
    for t in range(row.ended_ns, last + step, step):
        if backlog(t) <= level:
            return (t - row.ended_ns) / 1e9
    return None


def _kill(owner: Settings, name: str) -> None:
    """SIGKILL a service of the stack with its whole process tree; wait until its ports close."""
    service = manager.SERVICES[name](owner)
    record = manager.running(service)
    if record is not None:
        _kill_tree(record.pid)
    deadline = time.monotonic() + 30
    while any(is_listening(owner.host, port) for port in service.ports):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} still listens 30 s after SIGKILL")
        time.sleep(0.1)


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (some start sessions of their own)."""
    for member in process.descendants(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def _read_all(settings: Settings, topic: str) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"chaos-count-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.partition.eof": True,
                         "fetch.max.bytes": 32 << 20,
                         "max.partition.fetch.bytes": 16 << 20})  # fmt: skip
    consumer.subscribe([topic])
    found, quiet = [], time.monotonic()
    while time.monotonic() - quiet < 5:
        for message in consumer.consume(1000, timeout=0.5):
            if message.error() is None:
                found.append(message)
                quiet = time.monotonic()
    consumer.close()
    return found


def _keys(settings: Settings, topic: str) -> Counter[str]:
    return Counter((m.key() or b"").decode() for m in _read_all(settings, topic))


def _dead_letters(settings: Settings) -> dict[bytes | None, list[str]]:
    """Reasons of every DLQ record, by the original message's key."""
    dead: dict[bytes | None, list[str]] = {}
    for message in _read_all(settings, settings.topic(DLQ)):
        headers = dict(message.headers() or [])
        dead.setdefault(message.key(), []).append(headers["dlq.reason"].decode())
    return dead


def _poison_mismatches(poisons: list[Poison], dead: dict[bytes | None, list[str]],
                       flags: dict[int, list[str]]) -> list[str]:  # fmt: skip
    """Each poison message that did not end as the corpus says, and how it ended instead."""
    wrong = []
    for number, poison in enumerate(poisons):
        records = dead.get(poison.key(number), []) if not poison.keyless else []
        if poison.expected in (PREDICTED, INCOMPLETE):
            want = ["incomplete"] if poison.expected == INCOMPLETE else []
            missing = [e for e in poison.event_ids if flags.get(e) != want]
            if records or missing:
                wrong.append(f"{poison.kind}: dead letters {records}, not {poison.expected}: "
                             f"{missing}")  # fmt: skip
        elif records != [poison.expected]:
            wrong.append(f"{poison.kind}: dead letters {records}, expected [{poison.expected}]")
    return wrong
