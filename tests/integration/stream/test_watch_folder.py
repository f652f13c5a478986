"""`produce --watch` against real Kafka and MongoDB: files sent once, resumed, archived."""

import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from pymongo import MongoClient

from icecube_stream.config import Settings
from icecube_stream.events.format import DatasetWriter, EventDataset
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.events.simulator import Simulator
from icecube_stream.stream import topics
from icecube_stream.stream.frames import decode_frame
from icecube_stream.stream.schemas import PULSES, AvroCodec, topic_specs
from icecube_stream.stream.watcher import FileProgress, watch
from support import wait_for

pytestmark = pytest.mark.integration


def test_watch_sends_each_file_once_resumes_and_archives(stack: Settings, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = stack.model_copy(
        update={"topic_prefix": f"it-{tag}.", "mongo_database": f"it_{tag}"}
    )
    topics.apply(settings)
    incoming, archive = tmp_path / "incoming", tmp_path / "archive"
    geometry = icecube_geometry()
    with DatasetWriter(incoming, geometry, events_per_file=150) as writer:
        for batch in Simulator(geometry, seed=9).iter_batches(300):
            writer.append(batch)
    dataset = EventDataset(incoming)
    first, second = dataset.batch_ids
    ids = {b: [int(e) for c in dataset.iter_file(b) for e in c.event_id] for b in (first, second)}
    for path in (incoming / "train").iterdir():
        os.utime(path, (time.time() - 60, time.time() - 60))  # settled long ago
    # As if an earlier run had the first 100 events of the second file acknowledged.
    progress = FileProgress(settings)
    progress.save(f"train/{dataset.batch_path(second).name}", acked_events=100)

    running = True
    thread = threading.Thread(
        target=watch,
        kwargs={"settings": settings, "root": incoming, "archive": archive, "poll_s": 0.2,
                "say": lambda _: None, "keep_going": lambda: running},
    )  # fmt: skip
    thread.start()
    try:
        wait_for(lambda: len(list((archive / "train").glob("*.parquet"))) == 2, 60, "archiving")
    finally:
        running = False
        thread.join(timeout=30)
    assert not list((incoming / "train").glob("batch_*.parquet"))

    codec = AvroCodec.for_topic(topic_specs(settings.topics_dir)[PULSES])
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "check",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([settings.topic(PULSES)])
    sent: list[int] = []
    deadline = time.monotonic() + 30
    while len(sent) < 350 and time.monotonic() < deadline:
        for message in consumer.consume(100, timeout=1):
            sent += decode_frame(message.value(), codec).event_id.tolist()
    consumer.close()
    assert sorted(sent) == sorted(ids[first] + ids[second][100:])

    documents = {d["_id"]: d for d in progress.collection.find({})}
    assert {d["status"] for d in documents.values()} == {"archived"}
    assert sorted(d["acked_events"] for d in documents.values()) == [150, 150]
    progress.close()
    MongoClient(settings.mongo_url).drop_database(settings.mongo_database)
