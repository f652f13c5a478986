"""Raw pulses in, predictions out: through real Kafka, the Faust worker, `bentoml serve` and
MongoDB, compared with the same model run in-process."""

import time

import numpy as np
import pytest
from confluent_kafka import Consumer, Producer
from pymongo import MongoClient

from icecube_stream.config import Settings
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.model.inference import DirectionModel
from icecube_stream.physics.angles import angles_to_vector, angular_distance
from icecube_stream.stream import emitter
from icecube_stream.wire.topics import DLQ, PREDICTIONS, PULSES, topic_codec
from support import wait_for

pytestmark = pytest.mark.e2e

N = 5000


def read_topic(settings: Settings, topic: str, expected: int) -> list[dict[str, object]]:
    codec = topic_codec(PREDICTIONS, settings.topics_dir)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "e2e-check",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([settings.topic(topic)])
    records: list[dict[str, object]] = []
    idle = 0
    try:
        while len(records) < expected or idle < 3:  # read on a little to catch duplicates
            batch = consumer.consume(1000, timeout=1)
            idle = 0 if batch else idle + 1
            records += [codec.decode(m.value()) for m in batch if m.error() is None]
            if idle > 30:
                break
    finally:
        consumer.close()
    return records


def test_every_event_gets_exactly_one_prediction_equal_to_offline(
    pipeline: Settings, events: EventBatch, champion: tuple[Settings, DirectionModel]
) -> None:
    batch = take_events(events, 0, N)
    report = emitter.emit(pipeline, [("e2e", batch)])
    assert report.ok and report.events == N

    collection = MongoClient(pipeline.mongo_url)[pipeline.mongo_database][pipeline.mongo_collection]
    wait_for(lambda: collection.count_documents({}) >= N, 240, f"{N} predictions in MongoDB")
    documents = {d["event_id"]: d for d in collection.find({})}
    assert sorted(documents) == sorted(batch.event_id.tolist())

    records = read_topic(pipeline, PREDICTIONS, N)
    assert len(records) == N
    assert sorted(r["event_id"] for r in records) == sorted(batch.event_id.tolist())

    offline = champion[1].predict(batch.sensor_id, batch.time, batch.charge, batch.auxiliary,
                                  batch.offsets)  # fmt: skip
    streamed = np.array([[documents[i]["x"], documents[i]["y"], documents[i]["z"]]
                         for i in batch.event_id.tolist()])  # fmt: skip
    # Charges travel as float32 on the wire: directions agree to well under a milliradian.
    assert np.max(angular_distance(streamed, offline.direction)) < 1e-3
    truth = angles_to_vector(batch.azimuth, batch.zenith)
    streamed_error = float(np.mean(angular_distance(streamed, truth)))
    offline_error = float(np.mean(angular_distance(offline.direction, truth)))
    assert streamed_error == pytest.approx(offline_error, abs=1e-4)
    sigma = np.array([documents[i]["angular_uncertainty"] for i in batch.event_id.tolist()])
    np.testing.assert_allclose(sigma, offline.sigma, rtol=1e-3)
    first = documents[int(batch.event_id[0])]
    assert first["emitted_at_ns"] <= first["assembled_at_ns"] <= first["predicted_at_ns"]
    assert first["model_name"] == pipeline.model_name


def poison_batch(good: EventBatch) -> tuple[EventBatch, dict[int, str]]:
    """Good events with bad ones mixed in, and the DLQ reason each bad event should get."""
    counts = list(good.pulse_counts)
    pieces = {name: [getattr(good, name)] for name in ("sensor_id", "time", "charge", "auxiliary")}
    ids = list(good.event_id)
    expected: dict[int, str] = {}

    def add(event_id: int, sensor_id, time, charge, reason: str) -> None:  # type: ignore[no-untyped-def]
        ids.append(event_id)
        counts.append(len(time))
        pieces["sensor_id"].append(np.asarray(sensor_id, np.int16))
        pieces["time"].append(np.asarray(time, np.int64))
        pieces["charge"].append(np.asarray(charge, np.float64))
        pieces["auxiliary"].append(np.zeros(len(time), bool))
        expected[event_id] = reason

    add(9_000_001, [1, 2, 3], [0, 10, 20], [1.0, np.nan, 1.0], "non-finite")
    add(9_000_002, [1, 9999, 3], [0, 10, 20], [1.0, 1.0, 1.0], "unknown-sensor")
    add(9_000_003, [], [], [], "empty-event")
    n = 100_000
    add(9_000_004, np.arange(n) % 5160, np.arange(n), np.ones(n), "too-many-pulses")
    batch = EventBatch(
        geometry=good.geometry,
        event_id=np.asarray(ids, np.int64),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        **{name: np.concatenate(parts) for name, parts in pieces.items()},  # type: ignore[arg-type]
    )
    return batch, expected


def test_poison_lands_in_the_dlq_with_reasons_while_good_events_flow(
    pipeline: Settings, events: EventBatch
) -> None:
    good = take_events(events, N, N + 200)
    batch, expected = poison_batch(good)
    assert emitter.emit(pipeline, [("poison", batch)]).ok
    producer = Producer({"bootstrap.servers": pipeline.kafka_bootstrap})
    producer.produce(pipeline.topic(PULSES), key=b"junk", value=b"\x80\x04\x95pickle-ish junk")
    producer.produce(pipeline.topic(PULSES), key=b"v9", value=b"\x00\x00\x00\x00\x09" + bytes(40))
    assert producer.flush(30) == 0

    collection = MongoClient(pipeline.mongo_url)[pipeline.mongo_database][pipeline.mongo_collection]
    good_ids = good.event_id.tolist()
    wait_for(lambda: collection.count_documents({"_id": {"$in": good_ids}}) == len(good_ids), 120,
             "the good events' predictions")  # fmt: skip

    wanted = {"not-avro", "unknown-schema", *expected.values()}
    dead = dead_letters(pipeline, until=lambda found: wanted <= {r for r, _ in found})
    by_event = {event_id: reason for reason, event_id in dead if event_id is not None}
    assert {k: by_event.get(k) for k in expected} == expected
    reasons = {reason for reason, _ in dead}
    assert {"not-avro", "unknown-schema"} <= reasons
    assert collection.count_documents({"_id": {"$in": list(expected)}}) == 0


def dead_letters(settings: Settings, until) -> list[tuple[str, int | None]]:  # type: ignore[no-untyped-def]
    """(reason, event id) of every DLQ record, read until `until(records)` holds."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "e2e-dlq",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([settings.topic(DLQ)])
    found: list[tuple[str, int | None]] = []
    deadline = time.monotonic() + 120
    try:
        while not until(found):
            assert time.monotonic() < deadline, f"DLQ so far: {found}"
            for message in consumer.consume(100, timeout=1):
                headers = {k: v.decode() for k, v in message.headers() or []}
                if "dlq.events" not in headers:  # refused whole: undecodable
                    found.append((headers["dlq.reason"], None))
                    continue
                for pair in headers["dlq.events"].split(","):
                    event, _, reason = pair.partition(":")
                    found.append((reason, int(event)))
    finally:
        consumer.close()
    return found
