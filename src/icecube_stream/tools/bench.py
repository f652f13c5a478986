"""`icecube-stream bench`: the whole pipeline measured on this machine, beside its limits.

One run starts a private pipeline (own topics, consumer group, collection, model server and
worker) on the live stack, then measures, on the same events:
- latency: half the events offered at a fixed rate (default 2,700 Hz, IceCube's trigger rate),
  emit time to prediction written, p50/p99; first, while the pipeline is warm but quiet;
- throughput: the other half sent as fast as the emitter can, until every prediction is in
  MongoDB;
- the reference limits: raw Kafka produce + consume of the same frames, in-process inference of
  the same events, and the naive design (one synchronous HTTP call per event, no batching);
- where the CPU goes: CPU seconds per component per 1,000 events during the throughput run.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import numpy as np
import psutil
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient

from icecube_stream.config import Settings
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.stack import manager, process
from icecube_stream.stream import emitter, topics
from icecube_stream.stream.events import Events
from icecube_stream.tools.waiting import wait_for_predictions
from icecube_stream.wire.frame import encode_frame
from icecube_stream.wire.topics import PREDICTIONS, PULSES, topic_codec

COMPONENTS = ["model-server", "worker"]
OCTETS = {"content-type": "application/octet-stream"}
Say = Callable[[str], None]


@dataclass
class BenchResult:
    events: int
    offered_rate_hz: float
    throughput_eps: float
    latency_p50_s: float
    latency_p99_s: float
    lost: int
    duplicated: int
    kafka_eps: float
    inference_eps: float
    naive_http_eps: float
    cpu_s_per_1000_events: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "offered_rate_hz": self.offered_rate_hz,
            "throughput_eps": round(self.throughput_eps, 1),
            "latency_p50_s": round(self.latency_p50_s, 4),
            "latency_p99_s": round(self.latency_p99_s, 4),
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reference": {
                "kafka_produce_consume_eps": round(self.kafka_eps, 1),
                "inference_in_process_eps": round(self.inference_eps, 1),
                "naive_http_per_event_eps": round(self.naive_http_eps, 1),
            },
            "speedup_over_naive": round(self.throughput_eps / self.naive_http_eps, 1)
            if self.naive_http_eps
            else None,
            "cpu_s_per_1000_events": {
                k: round(v, 3) for k, v in self.cpu_s_per_1000_events.items()
            },
        }


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
    def __init__(self, settings: Settings, events: EventBatch, say: Say) -> None:
        self.base = settings
        self.say = say
        self.events = events
        self.settings = private_pipeline(settings, "bench")
        self.mongo: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_url)
        self.collection = self.mongo[settings.mongo_database][self.settings.mongo_collection]
        self.sent_accepted = 0  # predictions the phases so far should have written

    def run(self, rate_hz: float) -> BenchResult:
        n, half = self.events.n_events, self.events.n_events // 2
        fast, paced = take_events(self.events, 0, half), take_events(self.events, half, n)
        # Events over the pulse limit go to the dead-letter topic by design, not to MongoDB.
        self.expected = set(self.events.event_id[self.accepted(self.events)].tolist())
        topics.apply(self.settings)
        self.say("starting a private model server and worker")
        manager.up(self.settings, COMPONENTS, report=lambda _: None)
        try:
            self._warm_up()
            # Latency first, on a warm and quiet pipeline: right after the throughput burst the
            # database and the broker are still catching up on background work.
            self.say(f"latency: {paced.n_events} events offered at {rate_hz:,.0f} Hz")
            p50, p99 = self._latency(paced, rate_hz)
            self.say(f"  p50 {p50:.3f} s, p99 {p99:.3f} s")
            self.say(f"throughput: {fast.n_events} events as fast as possible")
            throughput, cpu = self._throughput(fast)
            self.say(f"  {throughput:,.0f} events/s end to end")
            lost, duplicated = self._completeness()
            self.say("reference: raw Kafka, in-process inference, one HTTP call per event")
            kafka_eps = self._kafka_reference(fast)
            naive_eps = self._naive_reference(fast)
        finally:
            manager.down(self.settings, COMPONENTS, report=lambda _: None)
            self.collection.drop()
            self.mongo.close()
            delete_topics(self.settings)
        inference_eps = self._inference_reference(fast)
        return BenchResult(
            events=self.events.n_events,
            offered_rate_hz=rate_hz,
            throughput_eps=throughput,
            latency_p50_s=p50,
            latency_p99_s=p99,
            lost=lost,
            duplicated=duplicated,
            kafka_eps=kafka_eps,
            inference_eps=inference_eps,
            naive_http_eps=naive_eps,
            cpu_s_per_1000_events={k: v / fast.n_events * 1000 for k, v in cpu.items()},
        )

    def accepted(self, batch: EventBatch) -> np.ndarray[Any, Any]:
        return batch.pulse_counts <= self.settings.max_event_pulses

    def _sent(self, batch: EventBatch) -> int:
        """Predictions expected once `batch` is through, counting the phases before it."""
        self.sent_accepted += int(self.accepted(batch).sum())
        return self.sent_accepted

    def _warm_up(self) -> None:
        """A few events through first, so connections and the first model call are not timed."""
        warm = take_events(self.events, 0, 64)
        warm = replace(warm, event_id=warm.event_id - 10**12)
        self.warm_up_events = 0
        emitter.emit(self.settings, [("bench-warm-up", warm)])
        self._wait_written(warm.n_events, timeout_s=120)
        self.warm_up_events = warm.n_events

    def _throughput(self, batch: EventBatch) -> tuple[float, dict[str, float]]:
        groups = self._process_groups()
        before = {name: tree_cpu_seconds(pid) for name, pid in groups.items()}
        own_before = time.process_time()
        emitter.emit(self.settings, [("bench", batch)])
        own = time.process_time() - own_before
        self._wait_written(self._sent(batch), timeout_s=600)
        cpu = {name: tree_cpu_seconds(pid) - before[name] for name, pid in groups.items()}
        cpu["emitter"] = own
        emitted, written = self._timestamps(batch)
        return batch.n_events / ((written.max() - emitted.min()) / 1e9), cpu

    def _latency(self, batch: EventBatch, rate_hz: float) -> tuple[float, float]:
        emitter.emit(self.settings, [("bench", batch)], rate_hz=rate_hz)
        self._wait_written(self._sent(batch), timeout_s=600)
        emitted, written = self._timestamps(batch)
        return percentiles((written - emitted) / 1e9)

    def _timestamps(self, batch: EventBatch) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        ids = batch.event_id.tolist()
        documents = list(
            self.collection.find({"_id": {"$in": ids}}, {"emitted_at_ns": 1, "written_at_ns": 1})
        )
        emitted = np.array([d["emitted_at_ns"] for d in documents], np.int64)
        written = np.array([d["written_at_ns"] for d in documents], np.int64)
        return emitted, written

    def _wait_written(self, expected: int, timeout_s: float) -> None:
        wait_for_predictions(self.settings, self.warm_up_events + expected, timeout_s)

    def _completeness(self) -> tuple[int, int]:
        """Events without a prediction document, and extra prediction records on the topic."""
        stored = {d["_id"] for d in self.collection.find({}, {"_id": 1})}
        on_topic = _count_topic(self.settings, self.settings.topic(PREDICTIONS))
        return len(self.expected - stored), max(0, on_topic - len(stored))

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
        consumer = Consumer({"bootstrap.servers": scratch.kafka_bootstrap, "group.id": "bench-raw",
                             "auto.offset.reset": "earliest"})  # fmt: skip
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
        with httpx.Client(base_url=self.settings.model_server_url, timeout=30) as client:
            started = time.perf_counter()
            for k in range(events.n_events):
                one = events.take(np.array([k])).frame("bench", time.time_ns())
                response = client.post("/predict", content=encode_frame(one, codec), headers=OCTETS)
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
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(settings.topic_prefix)]
    if names:
        for future in admin.delete_topics(names).values():
            future.result(timeout=30)


def _count_topic(settings: Settings, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "bench-count"})
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
