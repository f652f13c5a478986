"""The real detector through the whole pipeline: IceCube's geometry is predicted, a detector
1 m off is refused frame by frame (and can be replayed), frames without a geometry identity
(the first schema version) are still predicted and counted."""

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
from confluent_kafka import Consumer, Producer
from pymongo import MongoClient

from icecube_stream.config import Settings, settings_env
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.events.dataset import DatasetWriter
from icecube_stream.events.geometry import (
    ICECUBE_GEOMETRY_ID,
    from_positions,
    icecube_geometry_path,
    load_geometry,
)
from icecube_stream.events.layout import GEOMETRY_FILE
from icecube_stream.observe.http import metric_value
from icecube_stream.stream.framing import frames_from_batch
from icecube_stream.wire.frame import encode_frame
from icecube_stream.wire.topics import DLQ, PULSES, topic_codec
from support import wait_for

pytestmark = pytest.mark.e2e

SHARED_GEOMETRY = Path(__file__).resolve().parents[3] / "shared" / "data" / GEOMETRY_FILE
#: The published CSV: the shared reference copy beside the checkout, else the shipped one.
PUBLISHED_GEOMETRY = SHARED_GEOMETRY if SHARED_GEOMETRY.is_file() else icecube_geometry_path()
FIRST = 5200  # events 5200-5899 of the session's 6,000: the other e2e module uses 0-5199


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "icecube_stream", *args],
        env={**os.environ, **settings_env(settings), "ICECUBE_EMITTER_METRICS_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def data_set(root: Path, batch: EventBatch) -> Path:
    """The events as a Kaggle-layout folder with their geometry's sensor_geometry.csv."""
    with DatasetWriter(root, batch.geometry, events_per_file=10_000) as writer:
        writer.append(batch)
    return root


def mongo(settings: Settings):  # type: ignore[no-untyped-def]
    return MongoClient(settings.mongo_url)[settings.mongo_database][settings.mongo_collection]


def worker_metric(settings: Settings, name: str, **labels: str) -> float:
    """One series of the worker's /metrics (0 when absent)."""
    return metric_value(settings.worker_metrics_url, name, labels)


def mismatches(settings: Settings, group: str, expected: int) -> list[dict[str, str]]:
    """Headers of the geometry-mismatch DLQ records, read from the start until `expected` are
    in and nothing more came for 3 s (so a duplicate would be seen)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([settings.topic(DLQ)])
    found: list[dict[str, str]] = []
    deadline = time.monotonic() + 120
    idle = 0
    try:
        while len(found) < expected or idle < 3:
            assert time.monotonic() < deadline, f"DLQ so far: {found}"
            batch = consumer.consume(100, timeout=1)
            idle = 0 if batch else idle + 1
            for message in batch:
                headers = {k: v.decode() for k, v in message.headers() or []}
                if headers["dlq.reason"] == "geometry-mismatch":
                    found.append(headers)
    finally:
        consumer.close()
    return found


def test_a_data_set_of_the_real_geometry_is_predicted(
    pipeline: Settings, events: EventBatch, tmp_path: Path
) -> None:
    batch = take_events(events, FIRST, FIRST + 300)
    root = data_set(tmp_path / "icecube", batch)
    (root / GEOMETRY_FILE).write_bytes(PUBLISHED_GEOMETRY.read_bytes())
    assert load_geometry(root / GEOMETRY_FILE).identity == ICECUBE_GEOMETRY_ID
    produced = cli(pipeline, "produce", "--data", str(root))
    assert produced.returncode == 0, produced.stderr
    ids = batch.event_id.tolist()
    wait_for(lambda: mongo(pipeline).count_documents({"_id": {"$in": ids}}) == len(ids), 120,
             "a prediction for every event")  # fmt: skip
    served = httpx.get(f"{pipeline.model_server_url}/model").json()
    assert served["geometry_id"] == ICECUBE_GEOMETRY_ID

    found = cli(pipeline, "predictions", "get", str(ids[0]), "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == mongo(pipeline).find_one({"_id": ids[0]}, {"_id": False})
    missing = cli(pipeline, "predictions", "get", "1")
    assert missing.returncode == 1
    where = f"{pipeline.mongo_database}.{pipeline.mongo_collection}"
    assert f"no prediction for event 1 in {where}" in missing.stderr


def test_a_detector_one_metre_off_is_dead_lettered_per_frame_and_can_be_replayed(
    pipeline: Settings, events: EventBatch, tmp_path: Path
) -> None:
    batch = take_events(events, FIRST + 300, FIRST + 600)
    off = from_positions(batch.geometry.positions + np.array([1.0, 0.0, 0.0]))
    root = data_set(tmp_path / "off", replace(batch, geometry=off))
    n_frames = len(list(frames_from_batch(batch, "x", pipeline.frame_max_events, 1 << 20)))
    assert n_frames >= 3
    produced = cli(pipeline, "produce", "--data", str(root))
    assert produced.returncode == 0, produced.stderr

    records = mismatches(pipeline, "geometry-check", n_frames)
    assert len(records) == n_frames
    assert {r["dlq.frame_geometry"] for r in records} == {off.identity}
    assert {r["dlq.model_geometry"] for r in records} == {ICECUBE_GEOMETRY_ID}
    assert sorted(int(i) for r in records for i in r["dlq.event_id"].split(",")) == sorted(
        batch.event_id.tolist()
    )
    assert mongo(pipeline).count_documents({"_id": {"$in": batch.event_id.tolist()}}) == 0
    # The series the GeometryMismatch alert watches (its rule is tested with promtool).
    dead = worker_metric(pipeline, "icecube_worker_dlq_total", reason="geometry-mismatch")
    assert dead == n_frames

    shown = cli(pipeline, "dlq", "show", "--reason", "geometry-mismatch", "-n", "0", "--json")
    assert shown.returncode == 0, shown.stderr
    letters = [json.loads(line) for line in shown.stdout.splitlines()]
    assert sorted(int(i) for r in letters for i in r["headers"]["dlq.event_id"].split(",")) == (
        sorted(batch.event_id.tolist())
    )

    def replay(*flags: str) -> dict[str, int]:
        result = cli(pipeline, "dlq", "replay", "--reason", "geometry-mismatch", "--json", *flags)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    assert replay("--dry-run")["replayed"] == n_frames
    assert len(mismatches(pipeline, "geometry-after-dry-run", n_frames)) == n_frames  # none sent
    assert replay()["replayed"] == n_frames
    # Still the wrong detector for this model: refused again, one more record per frame.
    assert len(mismatches(pipeline, "geometry-after-replay", 2 * n_frames)) == 2 * n_frames
    # A replay sends each record once: only the new dead letters are left to replay.
    assert replay("--dry-run")["replayed"] == n_frames


def test_frames_of_the_first_schema_are_predicted_and_counted(
    pipeline: Settings, events: EventBatch
) -> None:
    batch = take_events(events, FIRST + 600, FIRST + 700)
    codec = topic_codec(PULSES, pipeline.topics_dir)

    def unknown_frames() -> float:
        return worker_metric(pipeline, "icecube_worker_unknown_geometry_frames_total")

    before = unknown_frames()
    producer = Producer({"bootstrap.servers": pipeline.kafka_bootstrap})
    frames = list(frames_from_batch(batch, "old-emitter", 32, 1 << 20))
    for frame in frames:
        record = codec.decode(encode_frame(frame.stamped(time.time_ns()), codec))
        del record["geometry_id"]
        producer.produce(pipeline.topic(PULSES), key=frame.key, value=codec.encode_as(1, record))
    assert producer.flush(30) == 0
    ids = batch.event_id.tolist()
    wait_for(lambda: mongo(pipeline).count_documents({"_id": {"$in": ids}}) == len(ids), 120,
             "predictions of the old-schema frames")  # fmt: skip
    wait_for(lambda: unknown_frames() - before >= len(frames), 30, "the unknown-geometry count")
    assert unknown_frames() - before == len(frames)
