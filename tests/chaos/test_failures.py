"""Failures under load: a worker killed with SIGKILL, the model server away for 20 s, a second
worker joining mid-run. Traffic stays on 127.0.0.1 and every run is bounded in events and time.
In each case every event must end with exactly one prediction document."""

import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient

from icecube_stream.config import Settings
from icecube_stream.events.format import EventBatch, take_events
from icecube_stream.stack import manager
from icecube_stream.stack.worker import Worker
from icecube_stream.stream import emitter
from support import free_port, wait_for

pytestmark = pytest.mark.chaos

RATE_HZ = 1500


class Traffic:
    """The emitter at a fixed rate in a background thread."""

    def __init__(self, settings: Settings, batch: EventBatch) -> None:
        self.batch = batch
        self.report: emitter.EmitReport | None = None
        self.thread = threading.Thread(
            target=lambda: setattr(
                self, "report", emitter.emit(settings, [("chaos", batch)], RATE_HZ)
            )
        )
        self.thread.start()

    def finish(self) -> emitter.EmitReport:
        self.thread.join(timeout=120)
        assert self.report is not None and self.report.ok
        return self.report


def predicted_ids(settings: Settings) -> set[int]:
    collection = MongoClient(settings.mongo_url)[settings.mongo_database][settings.mongo_collection]
    return {d["_id"] for d in collection.find({}, {"_id": 1})}


def all_predicted(settings: Settings, batch: EventBatch, timeout_s: float = 240) -> None:
    wanted = set(batch.event_id.tolist())
    wait_for(lambda: wanted <= predicted_ids(settings), timeout_s, f"{len(wanted)} predictions")


@pytest.fixture
def slices(events: EventBatch) -> Iterator[EventBatch]:
    """Disjoint slices of the simulated events, so each test's ids are its own."""
    return iter([take_events(events, start, start + 1500) for start in range(0, 6000, 1500)])


def test_worker_killed_with_sigkill_loses_nothing(pipeline: Settings, slices) -> None:  # type: ignore[no-untyped-def]
    batch = next(slices)
    traffic = Traffic(pipeline, batch)
    worker = manager.running(Worker(pipeline))
    assert worker is not None
    time.sleep(0.5)  # let part of the run through first
    os.killpg(worker.pid, signal.SIGKILL)
    traffic.finish()
    manager.up(pipeline, ["worker"], report=lambda _: None)
    all_predicted(pipeline, batch)


def test_model_server_away_for_20_s_loses_nothing(pipeline: Settings, slices) -> None:  # type: ignore[no-untyped-def]
    next(slices)
    batch = next(slices)
    traffic = Traffic(pipeline, batch)
    time.sleep(0.3)
    manager.down(pipeline, ["model-server"], report=lambda _: None)
    time.sleep(20)  # the outage itself, not a synchronisation
    traffic.finish()
    manager.up(pipeline, ["model-server"], report=lambda _: None)
    all_predicted(pipeline, batch)


def test_a_second_worker_joins_and_both_share_the_work(
    pipeline: Settings, slices, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    for _ in range(2):
        next(slices)
    batch = next(slices)
    second = pipeline.model_copy(update={"state_dir": tmp_path, "worker_web_port": free_port()})
    manager.up(second, ["worker"], report=lambda _: None)
    try:
        wait_for(lambda: assigned_members(pipeline) == 2, 120, "both workers to own partitions")
        traffic = Traffic(pipeline, batch)
        traffic.finish()
        all_predicted(pipeline, batch)
        counts = [predictions_made(s) for s in (pipeline, second)]
        assert all(count > 0 for count in counts), counts
    finally:
        manager.down(second, ["worker"], report=lambda _: None)


def predictions_made(settings: Settings) -> float:
    text = httpx.get(f"http://127.0.0.1:{settings.worker_web_port}/metrics", timeout=5).text
    name = "icecube_worker_predictions_total "
    line = next(row for row in text.splitlines() if row.startswith(name))
    return float(line.split()[1])


def assigned_members(settings: Settings) -> int:
    """Members of the worker group that currently own at least one partition."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    group = admin.describe_consumer_groups([settings.worker_app_id])[settings.worker_app_id]
    description = group.result(timeout=10)
    return sum(1 for member in description.members if member.assignment.topic_partitions)
