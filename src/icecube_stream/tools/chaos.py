"""`icecube-stream chaos`: faults that hit work in flight, on the live stack, while events flow;
then a count of what every sink received.

Like `bench`, a run has its own topics, consumer group, collection, model server and worker.
Events flow at the offered rate the whole time (fresh ids, looping over a simulated pool), and
the faults come one after another:
- the worker SIGKILLed at random moments, each time only once its own metrics show events in
  progress or messages held back (work in flight), and restarted at once;
- the Kafka broker SIGKILLed and restarted (every node, on a cluster);
- on a cluster of 3 or more (`stack up --brokers 3`): the broker leading most of the raw topic's
  partitions SIGKILLed and down for 30 s while producers and the worker carry on; and, when the
  nodes run in network namespaces (`--netns`), that broker cut off from the others and from
  every client for 30 s, then healed;
- MongoDB (FerretDB) SIGKILLed and down for a while;
- the model server SIGKILLed (its whole process tree) and down past the client's retry budget;
- the model server's answers replaced by 500s for a while (`fault_proxy.py` sits between it and
  the worker for the whole run);
- a second worker joining and, a while later, leaving;
- the poison corpus (`tools/poison.py`) written straight to the raw topic.
Afterwards, per fault, over the events emitted from its start to the next one's: how many have
no prediction (lost), MongoDB documents and predictions-topic records beyond one per event, the
events the alert policy selects without an alert on the alerts topic and alerts beyond one per
event, dead letters by reason, and the seconds from the fault's end until the backlog (emitted
but not yet written) was back to where it stood before the fault.
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
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient

from icecube_stream.alerts.policy import AlertPolicy
from icecube_stream.alerts.selection import policy_selects
from icecube_stream.config import Settings
from icecube_stream.connections import confluent_config, mongo_options
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.observe.http import metric_value
from icecube_stream.observe.lag import LagReader
from icecube_stream.stack import kafka, manager, network, process
from icecube_stream.stack.service import Service
from icecube_stream.stream import topics
from icecube_stream.stream.emitter import EmitReport, emit
from icecube_stream.tools.bench import delete_topics, free_port, private_pipeline
from icecube_stream.tools.fault_proxy import FaultProxy
from icecube_stream.tools.poison import INCOMPLETE, PREDICTED, Poison, corpus
from icecube_stream.wire.topics import ALERTS, DLQ, PREDICTIONS, PULSES, topic_codec, topic_specs

Say = Callable[[str], None]
ID_STRIDE = 10**9  # each pass over the pool shifts its ids by this much
IN_FLIGHT = ("icecube_worker_events_in_progress", "icecube_worker_messages_held",
             "icecube_worker_events_pending")  # fmt: skip
RECOVERY_GOAL_S = 30.0


@dataclass(frozen=True)
class Plan:
    """How long each fault lasts; 0 (or False) leaves it out."""

    worker_kills: int = 10
    kafka_down_s: float = 5.0
    broker_down_s: float = 30.0  # one node of a cluster of 3 or more
    partition_s: float = 30.0  # one node cut off, on a cluster in network namespaces
    mongo_down_s: float = 30.0
    model_down_s: float = 90.0
    model_errors_s: float = 20.0
    second_worker_s: float = 20.0
    poison: bool = True
    #: After each fault, traffic alone for at least quiet_s, then until the backlog is back
    #: to its level before the fault, but no longer than settle_s.
    quiet_s: float = 5.0
    settle_s: float = 45.0


@dataclass
class Row:
    fault: str
    started_ns: int
    ended_ns: int
    in_flight: str = "-"
    events: int = 0
    written_per_s: float = 0.0  # while the fault lasted: does the pipeline carry on?
    lost: int = 0
    mongo_duplicates: int = 0
    topic_duplicates: int = 0
    alerts: int = 0  # events the policy selects
    alerts_lost: int = 0  # of those, without an alert on the topic
    alert_duplicates: int = 0  # alerts on the topic beyond one per event
    dead_letters: dict[str, int] = field(default_factory=dict)
    recovered_s: float | None = None

    @property
    def duration_s(self) -> float:
        return (self.ended_ns - self.started_ns) / 1e9

    def as_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault, "in_flight": self.in_flight, "events": self.events,
            "written_per_s": round(self.written_per_s),
            "lost": self.lost, "mongo_duplicates": self.mongo_duplicates,
            "topic_duplicates": self.topic_duplicates, "alerts": self.alerts,
            "alerts_lost": self.alerts_lost, "alert_duplicates": self.alert_duplicates,
            "dead_letters": self.dead_letters,
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
            and r.alerts_lost == 0 and r.alert_duplicates == 0
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
        self.base, self.pool, self.say = kafka.cluster_settings(settings), pool, say
        self.random = random.Random(seed)
        #: The private model server's settings; the worker's differ in one port, the proxy's.
        self.settings = private_pipeline(self.base, "chaos", assembly_timeout_s=10.0)
        self.worker = self.settings.model_copy(update={"model_server_port": free_port()})
        self.rows: list[Row] = []
        self.mongo: MongoClient[dict[str, Any]] = MongoClient(
            self.base.mongo_url, **mongo_options(self.base)
        )
        self.lag = LagReader(self.worker)

    def run(self, plan: Plan, rate_hz: float) -> Outcome:
        topics.apply(self.settings)
        self.say("starting a private model server and worker")
        proxy = FaultProxy(self.settings.model_server_url, self.worker.host,
                           self.worker.model_server_port)  # fmt: skip
        traffic = Traffic(self.worker, self.pool, rate_hz)
        poisons: list[Poison] = []
        try:
            with proxy:
                manager.up(self.settings, ["model-server"], report=lambda _: None)
                manager.up(self.worker, ["worker"], report=lambda _: None)
                traffic.start()
                time.sleep(plan.quiet_s)
                for name, apply in self._faults(plan, proxy):
                    # The committed lag swings with the commit interval: allow half again.
                    level = 1.5 * self._backlog() + 10
                    self._fault(name, apply)
                    self._settle(level, plan)
                    time.sleep(self.random.uniform(0.0, 3.0))  # the next fault at random moments
                if plan.poison:
                    poisons = self._corpus()
                    self._fault("poison corpus", lambda: self._poison(poisons))
                    time.sleep(plan.quiet_s)
                traffic.stopping.set()
                traffic.join(timeout=120)
                self.say("waiting for every event to be written")
                self._drain(traffic)
            return self._count(traffic, poisons, rate_hz)
        finally:
            traffic.stopping.set()
            manager.down(self.worker, ["worker"], report=lambda _: None)
            manager.down(self.settings, ["model-server"], report=lambda _: None)
            killed = {"kafka": plan.kafka_down_s or plan.broker_down_s, "mongo": plan.mongo_down_s}
            restore = [name for name, down_s in killed.items() if down_s]
            if restore:
                manager.up(self.base, restore, report=lambda _: None)
            self._collection().drop()
            self.mongo[self.base.mongo_database][self.settings.mongo_alerts_collection].drop()
            self.mongo.close()
            self.lag.close()
            delete_topics(self.settings)

    # ------------------------------------------------------------------ faults

    def _faults(self, plan: Plan, proxy: FaultProxy) -> Iterator[tuple[str, Callable[[], Any]]]:
        for _ in range(plan.worker_kills):
            yield "worker SIGKILL", self._kill_worker
        nodes = self.base.kafka_brokers
        if plan.kafka_down_s:
            name = "Kafka broker SIGKILL" if nodes == 1 else f"all {nodes} Kafka nodes SIGKILL"
            yield name, functools.partial(self._outage, self.base, "kafka", plan.kafka_down_s)
        if plan.broker_down_s and nodes >= 3:
            yield (f"one of {nodes} Kafka brokers SIGKILL, {plan.broker_down_s:.0f} s",
                   functools.partial(self._lose_broker, plan.broker_down_s))  # fmt: skip
        if plan.partition_s and nodes >= 3 and self.base.kafka_netns:
            yield (f"one of {nodes} Kafka brokers cut off, {plan.partition_s:.0f} s",
                   functools.partial(self._cut_off_broker, plan.partition_s))  # fmt: skip
        if plan.mongo_down_s:
            yield (
                "MongoDB SIGKILL",
                functools.partial(self._outage, self.base, "mongo", plan.mongo_down_s),
            )
        if plan.model_down_s:
            yield (
                "model server SIGKILL",
                functools.partial(self._outage, self.settings, "model-server", plan.model_down_s),
            )
        if plan.model_errors_s:
            yield (f"model server answers 500 for {plan.model_errors_s:.0f} s",
                   functools.partial(self._errors, proxy, plan.model_errors_s))  # fmt: skip
        if plan.second_worker_s:
            yield (
                "a second worker joins and leaves",
                functools.partial(self._second_worker, plan.second_worker_s),
            )

    def _fault(self, name: str, apply: Callable[[], str | None]) -> None:
        started = time.time_ns()
        self.say(f"fault: {name}")
        in_flight = apply()
        self.rows.append(Row(name, started, time.time_ns(), in_flight or "-"))

    def _kill_worker(self) -> str:
        """SIGKILL once the worker holds work: what its metrics showed just before."""
        held = self._worker_holds()
        _kill(manager.select(self.worker, ["worker"])[0])
        manager.up(self.worker, ["worker"], report=lambda _: None)
        return held

    def _worker_holds(self, wait_s: float = 30) -> str:
        """The worker's unfinished work, once it has some (or after wait_s)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                held = {name: metric_value(self.worker.worker_metrics_url, name)
                        for name in IN_FLIGHT}  # fmt: skip
            except httpx.HTTPError:  # restarting still
                held = {}
            if any(held.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        shown = {name.removeprefix("icecube_worker_"): int(v) for name, v in held.items() if v}
        return ", ".join(f"{k} {v}" for k, v in shown.items()) or "none seen"

    def _outage(self, owner: Settings, name: str, down_s: float) -> None:
        for service in manager.select(owner, [name]):
            _kill(service)
        time.sleep(down_s)
        manager.up(owner, [name], report=lambda _: None)

    def _lose_broker(self, down_s: float) -> str:
        """The node leading most raw-topic partitions: producers and the worker must move to the
        new leaders and carry on, since the other two still make a quorum and an in-sync pair."""
        node, led = self._busiest_broker()
        _kill(kafka.nodes(self.base)[node - 1])
        time.sleep(down_s)
        manager.up(self.base, ["kafka"], report=lambda _: None)
        return f"node {node}, leader of {led} partitions"

    def _cut_off_broker(self, spell_s: float) -> str:
        """Like a kill, but the node lives on alone, still believing itself leader, and must
        step down and catch up once it is back."""
        node, led = self._busiest_broker()
        network.cut(self.base, node)
        try:
            time.sleep(spell_s)
        finally:
            network.heal(self.base, node)
        return f"node {node}, leader of {led} partitions"

    def _busiest_broker(self) -> tuple[int, int]:
        """The node leading most partitions of the raw topic, and how many it leads."""
        admin = AdminClient(confluent_config(self.base))
        topic = self.settings.topic(PULSES)
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
        node, led = Counter(p.leader for p in partitions).most_common(1)[0]
        return int(node), led

    def _errors(self, proxy: FaultProxy, spell_s: float) -> str:
        held = self._worker_holds()
        proxy.failing.set()
        time.sleep(spell_s)
        proxy.failing.clear()
        return f"{held}; {proxy.failed} requests answered 500"

    def _second_worker(self, hold_s: float) -> None:
        second = self.worker.model_copy(
            update={
                "state_dir": self.worker.state_dir / "second",
                "worker_web_port": free_port(),
            }
        )
        manager.up(second, ["worker"], report=lambda _: None)
        time.sleep(hold_s)
        manager.down(second, ["worker"], report=lambda _: None)

    def _corpus(self) -> list[Poison]:
        spec = self._spec(PULSES)
        size_limit = int(spec.config["max.message.bytes"])
        codec = topic_codec(PULSES, self.settings.topics_dir)
        return corpus(self.pool, codec, 7 * 10**17, size_limit, self.settings.assembly_timeout_s)

    def _poison(self, poisons: list[Poison]) -> str:
        producer = Producer(
            confluent_config(self.settings) | {"acks": "all", "message.max.bytes": 16 << 20}
        )
        topic = self.settings.topic(PULSES)
        for number, poison in enumerate(poisons):
            time.sleep(poison.after_s)
            producer.produce(topic, poison.value, poison.key(number), partition=poison.partition)
            producer.flush(30)
        return f"{len(poisons)} messages of {len({p.kind for p in poisons})} kinds"

    def _settle(self, level: float, plan: Plan) -> None:
        """Wait until the backlog is down to `level` (see Plan)."""
        time.sleep(plan.quiet_s)
        deadline = time.monotonic() + plan.settle_s - plan.quiet_s
        while time.monotonic() < deadline and self._backlog() > level:
            time.sleep(0.5)

    def _backlog(self) -> float:
        """Raw-topic messages the worker group has not committed; infinite while Kafka does not
        answer. Cheap enough to ask every half second (a count in MongoDB is not), and only
        paces the faults: the table's recovery times come from the written timestamps."""
        partitions = range(self._spec(PULSES).partitions)
        try:
            return float(sum(self.lag.lag(self.settings.topic(PULSES), partitions).values()))
        except KafkaException:
            return float("inf")

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
            if count >= wanted and self._worker_idle():
                return
            if count != last:
                last, still = count, time.monotonic()
            elif time.monotonic() - still > 60:
                return  # nothing new for a minute: what is missing is lost
            time.sleep(1)

    def _worker_idle(self) -> bool:
        """Everything read and nothing waiting: the poison corpus's split events, released only
        when their assembly times out, come after the last traffic event."""
        try:
            pending = metric_value(self.worker.worker_metrics_url, "icecube_worker_events_pending")
        except httpx.HTTPError:
            return False
        return pending == 0 and self._backlog() == 0

    def _collection(self) -> Any:
        return self.mongo[self.base.mongo_database][self.settings.mongo_collection]

    def _count(self, traffic: Traffic, poisons: list[Poison], rate_hz: float) -> Outcome:
        fields = ("written_at_ns", "flags", "track_probability", "charge", "angular_uncertainty")
        documents = list(self._collection().find({}, dict.fromkeys(fields, 1)))
        stored = Counter(d["_id"] for d in documents)
        on_topic = _keys(self.settings, self.settings.topic(PREDICTIONS))
        policy = AlertPolicy.from_settings(self.settings)
        selected = policy_selects(documents, policy)[2] if documents else np.zeros(0, np.bool_)
        should_alert = {d["_id"] for d, chosen in zip(documents, selected, strict=True) if chosen}
        alerted = _keys(self.settings, self.settings.topic(ALERTS))
        dead = _dead_letters(self.settings)
        emitted_at = np.array([at for at, ids in traffic.chunks for _ in ids], np.int64)
        emitted_ids = np.concatenate([ids for _, ids in traffic.chunks])
        written_at = np.sort(np.array([d["written_at_ns"] for d in documents], np.int64))
        ends = [r.started_ns for r in self.rows[1:]] + [int(emitted_at.max()) + 1]
        for row, until in zip(self.rows, ends, strict=True):
            mine = emitted_ids[(emitted_at >= row.started_ns) & (emitted_at < until)].tolist()
            row.events = len(mine)
            during = np.searchsorted(written_at, [row.started_ns, row.ended_ns])
            row.written_per_s = float(during[1] - during[0]) / max(row.duration_s, 1e-3)
            row.lost = sum(1 for e in mine if e not in stored)
            row.mongo_duplicates = sum(stored[e] - 1 for e in mine if stored[e] > 1)
            row.topic_duplicates = sum(on_topic[str(e)] - 1 for e in mine if on_topic[str(e)] > 1)
            row.alerts = sum(1 for e in mine if e in should_alert)
            row.alerts_lost = sum(1 for e in mine if e in should_alert and not alerted[str(e)])
            row.alert_duplicates = sum(alerted[str(e)] - 1 for e in mine if alerted[str(e)] > 1)
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


def _kill(service: Service) -> None:
    """SIGKILL a service of the stack with its whole process tree; wait until its ports close."""
    record = manager.running(service)
    if record is not None:
        _kill_tree(record.pid)
    deadline = time.monotonic() + 30
    while service.listening():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{service.name} still listens 30 s after SIGKILL")
        time.sleep(0.1)


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (some start sessions of their own)."""
    for member in process.descendants(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def _read_all(settings: Settings, topic: str) -> list[Any]:
    consumer = Consumer(
        confluent_config(settings)
        | {
            "group.id": f"chaos-count-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "fetch.max.bytes": 32 << 20,
            "max.partition.fetch.bytes": 16 << 20,
        }
    )
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
