"""Consumer lag read from real Kafka, and the emitter's /metrics while `produce` runs."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from icecube_stream.config import Settings, settings_env
from icecube_stream.events.batch import concat_batches
from icecube_stream.events.dataset import DatasetWriter
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.events.simulator import Simulator
from icecube_stream.observe.http import metric_value
from icecube_stream.observe.lag import LagReader
from icecube_stream.stream import emitter, topics
from icecube_stream.wire.topics import PULSES
from support import free_port, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def isolated(stack: Settings) -> Settings:
    tag = uuid.uuid4().hex[:8]
    settings = stack.model_copy(
        update={
            "topic_prefix": f"obs-{tag}.",
            "worker_app_id": f"obs-{tag}",
            "frame_max_events": 50,
        }
    )
    topics.apply(settings)
    return settings


def test_lag_counts_uncommitted_messages_per_partition(isolated: Settings) -> None:
    batch = concat_batches(list(Simulator(icecube_geometry(), seed=3).iter_batches(600)))
    report = emitter.emit(isolated, [("sim", batch)])
    assert report.ok and report.frames == 12
    topic = isolated.topic(PULSES)
    reader = LagReader(isolated)
    try:
        partitions = range(len(reader.consumer.list_topics(topic).topics[topic].partitions))
        lags = reader.update(topic, partitions)
        assert sum(lags.values()) == 12  # nothing committed yet: every frame counts
        busiest = max(lags, key=lambda p: lags[p])

        group = Consumer({"bootstrap.servers": isolated.kafka_bootstrap,
                          "group.id": isolated.worker_app_id})  # fmt: skip
        group.commit(offsets=[TopicPartition(topic, busiest, 1)], asynchronous=False)
        group.close()
        after = reader.update(topic, [busiest])
        assert after == {busiest: lags[busiest] - 1}
        from icecube_stream import metrics

        exported = metrics.WORKER_CONSUMER_LAG.collect()[0].samples
        assert [(s.labels["partition"], s.value) for s in exported
                if s.labels["topic"] == topic] == [(str(busiest), lags[busiest] - 1)]  # fmt: skip
    finally:
        reader.close()


def test_produce_serves_emitter_metrics_while_it_runs(isolated: Settings, tmp_path: Path) -> None:
    geometry = icecube_geometry()
    with DatasetWriter(tmp_path, geometry, events_per_file=400) as writer:
        for part in Simulator(geometry, seed=4).iter_batches(400):
            writer.append(part)
    port = free_port()
    env = {**os.environ, **settings_env(isolated), "ICECUBE_EMITTER_METRICS_PORT": str(port)}
    command = [sys.executable, "-m", "icecube_stream", "produce", "--data", str(tmp_path),
               "--rate", "100", "--limit", "400", "--json"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/metrics"

    def scraped() -> bool:
        try:
            events = metric_value(url, "icecube_emitter_events_total", timeout_s=2)
            beat = metric_value(url, "icecube_emitter_heartbeat_timestamp_seconds", timeout_s=2)
        except httpx.HTTPError:
            return False
        return events > 0 and beat > 1e9

    try:
        wait_for(scraped, 30, "the emitter's /metrics with events and a heartbeat")
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.decode()[-2000:]
    assert '"events": 400' in out.decode()
