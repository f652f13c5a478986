"""`icecube-stream bench`: the whole pipeline measured on this machine, beside its limits.

One run starts a private pipeline (own topics, consumer group, collection, model server and
worker) on the live stack, then measures, on the same events:
- latency: half the events offered at a fixed rate (default 2,700 Hz, IceCube's trigger rate),
  emit time to prediction written, p50/p99; first, while the pipeline is warm but quiet;
- throughput: the other half sent as fast as the emitter can, until every prediction is in
  MongoDB;
- the reference limits: raw Kafka produce + consume of the same frames, in-process inference of
  the same events, and the naive design (one synchronous HTTP call per event, no batching);
- the sustainable rate: the highest offered rate, on a ladder of steps a quarter apart, whose
  p99 stayed within 1 s, and so the headroom at the offered rate;
- where the CPU goes: CPU seconds per component per 1,000 events during the throughput run.

Machines of one kind differ in speed, so the goals are ratios taken within one round: end to end
over in-process inference of the same events, and events per CPU-second of the whole pipeline.
Each round is repeated (three by default) on the same private pipeline; the summary gives the
minimum, median and maximum of every figure.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import httpx
import numpy as np
import psutil
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient

from icecube_stream.config import Settings
from icecube_stream.connections import confluent_config, model_server_headers, mongo_options
from icecube_stream.events.batch import EventBatch, concat_batches, take_events
from icecube_stream.stack import manager, process
from icecube_stream.stream import emitter, topics
from icecube_stream.stream.events import Events
from icecube_stream.tools.waiting import wait_for_predictions
from icecube_stream.wire.codec import AvroCodec, JsonCodec
from icecube_stream.wire.frame import encode_frame
from icecube_stream.wire.topics import ALERTS, PREDICTIONS, PULSES, json_codec, topic_codec

COMPONENTS = ["model-server", "worker"]
OCTETS = {"content-type": "application/octet-stream"}
Say = Callable[[str], None]


#: The latency a rate must keep, at p99, to count as sustained.
SUSTAINED_P99_S = 1.0
#: Rates tried in the search for the sustainable one are this factor apart.
LADDER_FACTOR = 1.25
#: Ids of reused events are shifted by multiples of this, so that every sent event is new.
ID_SHIFT = 10**12


@dataclass
class BenchResult:
    """One round's figures."""

    events: int
    offered_rate_hz: float
    throughput_eps: float
    latency_p50_s: float
    latency_p99_s: float
    sustainable_rate_hz: float
    lost: int
    duplicated: int
    kafka_eps: float
    inference_eps: float
    naive_http_eps: float
    alerts: int = 0  # alerts of the latency run's events
    alert_latency_p99_s: float = float("nan")  # their event time -> alert on the topic
    cpu_s_per_1000_events: dict[str, float] = field(default_factory=dict)

    @property
    def events_per_cpu_s(self) -> float:
        """Events per CPU-second of every component together (Kafka, MongoDB, model server,
        worker and emitter) during the throughput run."""
        total = sum(self.cpu_s_per_1000_events.values())
        return 1000 / total if total else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "offered_rate_hz": self.offered_rate_hz,
            "throughput_eps": round(self.throughput_eps, 1),
            "inference_in_process_eps": round(self.inference_eps, 1),
            "end_to_end_over_inference": round(self.throughput_eps / self.inference_eps, 3),
            "events_per_cpu_s": round(self.events_per_cpu_s, 1),
            "latency_p50_s": round(self.latency_p50_s, 4),
            "latency_p99_s": round(self.latency_p99_s, 4),
            "sustainable_rate_hz": round(self.sustainable_rate_hz),
            "headroom": round(self.sustainable_rate_hz / self.offered_rate_hz, 2),
            "lost": self.lost,
            "duplicated": self.duplicated,
            "alerts": self.alerts,
            "alert_latency_p99_s": round(self.alert_latency_p99_s, 4),
            "reference": {
                "kafka_produce_consume_eps": round(self.kafka_eps, 1),
                "naive_http_per_event_eps": round(self.naive_http_eps, 1),
            },
            "cpu_s_per_1000_events": {
                k: round(v, 3) for k, v in self.cpu_s_per_1000_events.items()
            },
        }


def summary(rounds: list[dict[str, Any]]) -> dict[str, tuple[float, float, float]]:
    """Minimum, median and maximum of every figure over the rounds (nested ones as "a.b")."""
    values: dict[str, list[float]] = {}

    def collect(prefix: str, figures: dict[str, Any]) -> None:
        for name, value in figures.items():
            if isinstance(value, dict):
                collect(f"{prefix}{name}.", value)
            elif name not in ("events", "offered_rate_hz"):
                values.setdefault(prefix + name, []).append(float(value))

    for figures in rounds:
        collect("", figures)
    return {name: (min(v), float(np.median(v)), max(v)) for name, v in values.items()}


def percentiles(latencies_s: np.ndarray[Any, Any]) -> tuple[float, float]:
    if latencies_s.size == 0:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(latencies_s, [50, 99])
    return float(p50), float(p99)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its live descendants."""
    total = 0.0
    for member in process.descendants(pid):
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(member).cpu_times()
            total += times.user + times.system
    return total


class Bench:
    def __init__(
        self, settings: Settings, events: EventBatch, say: Say, step_s: float = 8.0
    ) -> None:
        self.base = settings
        self.say = say
        self.events = events
        self.step_s = step_s  # length of each step of the sustainable-rate search
        self.settings = private_pipeline(settings, "bench")
        self.mongo: MongoClient[dict[str, Any]] = MongoClient(
            settings.mongo_url, **mongo_options(settings)
        )
        self.collection = self.mongo[settings.mongo_database][self.settings.mongo_collection]
        self.expected: set[int] = set()  # ids of every accepted event sent
        self.predictions = PredictionReader(self.settings)
        self.alerts = PredictionReader(self.settings, ALERTS)
        self.reuses = 0

    def run(self, rate_hz: float, rounds: int = 3) -> list[BenchResult]:
        """Every round on one private pipeline, started once and removed at the end."""
        topics.apply(self.settings)
        self.say("starting a private model server and worker")
        manager.up(self.settings, COMPONENTS, report=lambda _: None)
        try:
            self._send(self._fresh(take_events(self.events, 0, 64)))  # not timed: warm-up
            results = []
            for number in range(1, rounds + 1):
                self.say(f"round {number} of {rounds}")
                results.append(self._round(rate_hz))
            return results
        finally:
            manager.down(self.settings, COMPONENTS, report=lambda _: None)
            self.predictions.close()
            self.alerts.close()
            self.collection.drop()
            self.mongo[self.settings.mongo_database][self.settings.mongo_alerts_collection].drop()
            self.mongo.close()
            delete_topics(self.settings)

    def _round(self, rate_hz: float) -> BenchResult:
        n, half = self.events.n_events, self.events.n_events // 2
        fast = self._fresh(take_events(self.events, 0, half))
        paced = self._fresh(take_events(self.events, half, n))
        # Latency first, on a warm and quiet pipeline: right after the throughput burst the
        # database and the broker are still catching up on background work.
        self.say(f"  latency: {paced.n_events:,} events offered at {rate_hz:,.0f} Hz")
        p50, p99 = self._latency(paced, rate_hz)
        self.say(f"    p50 {p50:.3f} s, p99 {p99:.3f} s")
        alerts, alert_p99 = self._alert_latency(paced)
        self.say(f"    {alerts} alerts, trigger to alert p99 {alert_p99:.3f} s")
        self.say(f"  throughput: {fast.n_events:,} events as fast as possible")
        throughput, cpu = self._throughput(fast)
        self.say(f"    {throughput:,.0f} events/s end to end")
        sustainable = self._sustainable(take_events(self.events, half, n), rate_hz)
        self.say(f"    sustainable rate {sustainable:,.0f} Hz")
        lost, duplicated = self._completeness()
        # The pipeline idles meanwhile: everything sent is written.
        self.say("  reference: in-process inference, raw Kafka, one HTTP call per event")
        inference_eps = self._inference_reference(fast)
        kafka_eps = self._kafka_reference(fast)
        naive_eps = self._naive_reference(fast)
        return BenchResult(
            events=n,
            offered_rate_hz=rate_hz,
            throughput_eps=throughput,
            latency_p50_s=p50,
            latency_p99_s=p99,
            sustainable_rate_hz=sustainable,
            lost=lost,
            duplicated=duplicated,
            kafka_eps=kafka_eps,
            inference_eps=inference_eps,
            naive_http_eps=naive_eps,
            alerts=alerts,
            alert_latency_p99_s=alert_p99,
            cpu_s_per_1000_events={k: v / fast.n_events * 1000 for k, v in cpu.items()},
        )

    def accepted(self, batch: EventBatch) -> np.ndarray[Any, Any]:
        return batch.pulse_counts <= self.settings.max_event_pulses

    def _fresh(self, batch: EventBatch) -> EventBatch:
        """Events of the data set under ids never sent before: every round and step sends new
        events (pass the data set's own events, whose ids are below ID_SHIFT)."""
        self.reuses += 1
        return replace(batch, event_id=batch.event_id + self.reuses * ID_SHIFT)

    def _send(self, batch: EventBatch, rate_hz: float | None = None) -> None:
        """Emit and wait until every accepted event has its prediction in MongoDB."""
        self._emit(batch, rate_hz)
        wait_for_predictions(self.settings, len(self.expected), timeout_s=600)

    def _emit(self, batch: EventBatch, rate_hz: float | None = None) -> None:
        self.expected |= set(batch.event_id[self.accepted(batch)].tolist())
        emitter.emit(self.settings, [("bench", batch)], rate_hz=rate_hz)

    def _throughput(self, batch: EventBatch) -> tuple[float, dict[str, float]]:
        groups = self._process_groups()
        before = {name: tree_cpu_seconds(pid) for name, pid in groups.items()}
        own_before = time.process_time()
        self._emit(batch)
        own = time.process_time() - own_before
        wait_for_predictions(self.settings, len(self.expected), timeout_s=600)
        cpu = {name: tree_cpu_seconds(pid) - before[name] for name, pid in groups.items()}
        cpu["emitter"] = own
        emitted, written = self._timestamps(batch)
        return batch.n_events / ((written.max() - emitted.min()) / 1e9), cpu

    def _latency(self, batch: EventBatch, rate_hz: float) -> tuple[float, float]:
        self._send(batch, rate_hz)
        emitted, written = self._timestamps(batch)
        return percentiles((written - emitted) / 1e9)

    def _alert_latency(self, batch: EventBatch) -> tuple[int, float]:
        """The batch's alerts and the p99 from event time to the alert's record timestamp
        (taken as the worker hands it to the producer, once its sky map is written)."""
        parts = [self.alerts.read_new()]
        while parts[-1][0].size:  # a step's alert may land just after its predictions
            time.sleep(0.5)
            parts.append(self.alerts.read_new())
        ids, event_time, sent = (np.concatenate(column) for column in zip(*parts, strict=True))
        ours = np.isin(ids, batch.event_id)
        return int(ours.sum()), percentiles((sent[ours] - event_time[ours]) / 1e9)[1]

    def _sustainable(self, events: EventBatch, start_hz: float) -> float:
        """The highest rate on a ladder through start_hz (factor LADDER_FACTOR) whose p99 stayed
        within SUSTAINED_P99_S over step_s seconds of traffic: up from start_hz while it holds
        (to 16 times start_hz at most), down while it does not (0 below a sixteenth of it)."""

        def holds(rate_hz: float) -> bool:
            size = max(1, int(rate_hz * self.step_s))
            copies = [self._fresh(events) for _ in range(size // events.n_events + 1)]
            p99 = self._latency(take_events(concat_batches(copies), 0, size), rate_hz)[1]
            self.say(f"    {rate_hz:,.0f} Hz for {self.step_s:g} s: p99 {p99:.3f} s")
            return p99 <= SUSTAINED_P99_S

        rate = start_hz
        if holds(rate):
            while rate * LADDER_FACTOR <= 16 * start_hz and holds(rate * LADDER_FACTOR):
                rate *= LADDER_FACTOR
            return rate
        while rate / LADDER_FACTOR >= start_hz / 16:
            rate /= LADDER_FACTOR
            if holds(rate):
                return rate
        return 0.0

    def _timestamps(self, batch: EventBatch) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Emit and write times of the batch's predictions, from the predictions topic: FerretDB
        on SQLite scans the whole collection for any query but one `_id` (33 s for 100 ids
        among 273,000 documents), so the bench asks MongoDB only for its document count. The
        record's timestamp is taken where MongoDB's `written_at_ns` is, as the worker hands the
        prediction to both sinks; the first copy of a prediction written twice counts."""
        ids, emitted, written = self.predictions.read_new()
        ours = np.isin(ids, batch.event_id)
        ids, emitted, written = ids[ours], emitted[ours], written[ours]
        order = np.argsort(written, kind="stable")
        _, first = np.unique(ids[order], return_index=True)
        return emitted[order][first], written[order][first]

    def _completeness(self) -> tuple[int, int]:
        """Accepted events sent without a prediction document, and prediction records on the
        topic beyond one per document (documents are keyed by event id: one per event)."""
        stored = self.collection.estimated_document_count()
        on_topic = _count_topic(self.settings, self.settings.topic(PREDICTIONS))
        return max(0, len(self.expected) - stored), max(0, on_topic - stored)

    def _process_groups(self) -> dict[str, int]:
        groups = {}
        for name in ["kafka", "mongo", *COMPONENTS]:
            owner = self.settings if name in COMPONENTS else self.base  # whose pid files
            record = manager.running(manager.SERVICES[name](owner))
            if record is not None:
                groups[name] = record.pid
        return groups

    def _kafka_reference(self, batch: EventBatch) -> float:
        """The same frames produced to a scratch topic and consumed back: the broker's limit."""
        scratch = self.settings.model_copy(
            update={"topic_prefix": self.settings.topic_prefix + "raw."}
        )
        topics.apply(scratch)
        started = time.perf_counter()
        report = emitter.emit(scratch, [("bench-raw", batch)])
        group = f"bench-raw-{uuid.uuid4().hex[:8]}"
        consumer = Consumer(
            confluent_config(scratch) | {"group.id": group, "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([scratch.topic(PULSES)])
        received = 0
        while received < report.frames:
            received += sum(1 for m in consumer.consume(100, timeout=1) if m.error() is None)
        consumer.close()
        return batch.n_events / (time.perf_counter() - started)

    def _naive_reference(self, batch: EventBatch, limit: int = 1000) -> float:
        """One blocking HTTP request per event, no batching: the design frames replace."""
        codec = topic_codec(PULSES, self.settings.topics_dir)
        events = Events.of_batch(take_events(batch, 0, min(limit, batch.n_events)))
        headers = OCTETS | model_server_headers(self.settings)
        with httpx.Client(base_url=self.settings.model_server_url, timeout=30) as client:
            started = time.perf_counter()
            for k in range(events.n_events):
                one = events.take(np.array([k])).frame("bench", time.time_ns())
                response = client.post(
                    "/predict", content=encode_frame(one, codec), headers=headers
                )
                response.raise_for_status()
            return events.n_events / (time.perf_counter() - started)

    def _inference_reference(self, batch: EventBatch) -> float:
        from icecube_stream.model.registry import load_model

        model = load_model("champion", self.settings)
        model.predict(batch.sensor_id[:1000], batch.time[:1000], batch.charge[:1000],
                      batch.auxiliary[:1000], np.array([0, 1000]))  # fmt: skip
        started = time.perf_counter()
        model.predict(batch.sensor_id, batch.time, batch.charge, batch.auxiliary, batch.offsets)
        return batch.n_events / (time.perf_counter() - started)


class PredictionReader:
    """The predictions (or alerts) topic read from where the last read stopped: event id,
    event time and the record's timestamp (ms) of every record since."""

    def __init__(self, settings: Settings, topic: str = PREDICTIONS) -> None:
        self.topic = settings.topic(topic)
        self.codec: AvroCodec | JsonCodec = (
            json_codec(topic, settings.topics_dir)
            if topic == ALERTS
            else topic_codec(topic, settings.topics_dir)
        )
        group = f"bench-read-{uuid.uuid4().hex[:8]}"
        self.consumer = Consumer(
            confluent_config(settings) | {"group.id": group, "enable.auto.commit": False}
        )
        self.position: dict[int, int] = {}

    def read_new(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        metadata = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic]
        ends = {}
        for partition in metadata.partitions:
            start = self.position.get(partition, 0)
            end = self.consumer.get_watermark_offsets(TopicPartition(self.topic, partition), 10)[1]
            if end > start:
                ends[partition] = end
        self.consumer.assign([TopicPartition(self.topic, p, self.position.get(p, 0))
                              for p in ends])  # fmt: skip
        ids, emitted, written = [], [], []
        deadline = time.monotonic() + 120
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.topic} not read to its end within 120 s: {ends}")
            for message in self.consumer.consume(1000, timeout=1):
                value, partition, offset = message.value(), message.partition(), message.offset()
                if message.error() is not None or value is None or partition is None:
                    continue
                record = self.codec.decode(value)
                ids.append(record["event_id"])
                emitted.append(record.get("emitted_at_ns") or _unix_ns(record["trigger_time"]))
                written.append(message.timestamp()[1] * 1_000_000)
                self.position[partition] = (offset or 0) + 1
                if self.position[partition] >= ends.get(partition, 0):
                    ends.pop(partition, None)
        return (np.array(ids, np.int64), np.array(emitted, np.int64),
                np.array(written, np.int64))  # fmt: skip

    def close(self) -> None:
        self.consumer.close()


def _unix_ns(iso_utc: str) -> int:
    moment = datetime.fromisoformat(iso_utc)
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def private_pipeline(settings: Settings, name: str, **changes: Any) -> Settings:
    """Settings of a pipeline of its own on the live stack: topics, consumer group, collection,
    state folder and ports that nothing else uses."""
    tag = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={
            "state_dir": settings.state_dir / name / tag,
            "topic_prefix": f"{name}-{tag}.",
            "worker_app_id": f"{name}-worker-{tag}",
            "mongo_collection": f"{name}_{tag}",
            "model_server_port": free_port(),
            "worker_web_port": free_port(),
            **changes,
        }
    )


def delete_topics(settings: Settings) -> None:
    """The bench's private topics (its prefix, scratch ones included) are of no further use."""
    admin = AdminClient(confluent_config(settings))
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(settings.topic_prefix)]
    if names:
        for future in admin.delete_topics(names).values():
            future.result(timeout=30)


def _count_topic(settings: Settings, topic: str) -> int:
    consumer = Consumer(confluent_config(settings) | {"group.id": "bench-count"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        total = 0
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
