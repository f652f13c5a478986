"""Raw pulses in, predictions out: through real Kafka, the Faust worker, `bentoml serve` and
MongoDB, compared with the same model run in-process."""

import numpy as np
import pytest
from confluent_kafka import Consumer
from pymongo import MongoClient

from icecube_stream.config import Settings
from icecube_stream.events.format import EventBatch, take_events
from icecube_stream.model.inference import DirectionModel
from icecube_stream.physics.angles import angles_to_vector, angular_distance
from icecube_stream.stream import emitter
from icecube_stream.stream.schemas import PREDICTIONS, AvroCodec, topic_specs
from support import wait_for

pytestmark = pytest.mark.e2e

N = 5000


def read_topic(settings: Settings, topic: str, expected: int) -> list[dict[str, object]]:
    codec = AvroCodec.for_topic(topic_specs(settings.topics_dir)[PREDICTIONS])
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
