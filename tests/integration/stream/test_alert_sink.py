"""The alerts sink against real Kafka and MongoDB: each alert reaches the topic once, with its
sky map, whether its event is replayed after a clean write or after a crash on either side of
the send."""

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from pymongo import MongoClient

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.sky.store import read_skymap
from icecube_stream.stream.sinks.alerts import KafkaAlerts
from icecube_stream.wire.topics import ALERTS, json_codec
from support import write_once

pytestmark = pytest.mark.integration

T0 = 1_796_000_000_000_000_000


def prediction(event_id: int, **changes: Any) -> dict[str, Any]:
    record = {
        "event_id": event_id, "azimuth": 1.0, "zenith": 2.0, "x": 0.0, "y": 0.0, "z": 1.0,
        "angular_uncertainty": math.radians(1.0), "model_name": "direction",
        "model_version": "7", "n_pulses": 80, "emitted_at_ns": T0, "assembled_at_ns": T0,
        "predicted_at_ns": T0, "event_time_ns": T0 + event_id, "event_time_source": "emitted",
        "ra": 1.0, "dec": -0.5, "track_probability": 0.9, "charge": 5000.0, "flags": [],
    }  # fmt: skip
    return record | changes


def write(settings: Settings, records: list[dict[str, Any]]) -> None:
    write_once(KafkaAlerts(settings), records)


def alerts_on_topic(settings: Settings) -> list[dict[str, Any]]:
    codec = json_codec(ALERTS, settings.topics_dir)
    topic = settings.topic(ALERTS)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "check"})
    end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    consumer.assign([TopicPartition(topic, 0, 0)])
    found: list[dict[str, Any]] = []
    while len(found) < end:
        for message in consumer.consume(100, timeout=5):
            assert message.error() is None
            found.append(codec.decode(message.value()))
    consumer.close()
    return found


@pytest.fixture
def settings(private: Settings, tmp_path: Path) -> Settings:
    return private.model_copy(update={"skymap_url": str(tmp_path / "maps")})


def test_each_alert_is_sent_once_with_its_map(settings: Settings) -> None:
    records = [prediction(1), prediction(2, charge=10.0), prediction(3, track_probability=None),
               prediction(4), prediction(5, angular_uncertainty=math.radians(5.0))]  # fmt: skip
    write(settings, records)
    alerts = alerts_on_topic(settings)
    assert sorted(a["event_id"] for a in alerts) == [1, 4]
    for alert in alerts:
        skymap = read_skymap(alert["healpix_url"])
        assert skymap.meta["OBJECT"] == alert["event_name"][0]
        assert skymap.meta["RA"] == pytest.approx(alert["ra"], abs=1e-3)

    already = metrics.ALERTS_ALREADY_SENT._value.get()
    write(settings, records)  # the step replayed after a clean write
    assert len(alerts_on_topic(settings)) == 2
    assert metrics.ALERTS_ALREADY_SENT._value.get() == already + 2


def test_a_crash_on_either_side_of_the_send_neither_loses_nor_repeats(settings: Settings) -> None:
    write(settings, [prediction(1)])  # creates the collection and the first alert
    (first,) = alerts_on_topic(settings)
    mongo = MongoClient(settings.mongo_url)
    ledger = mongo[settings.mongo_database][settings.mongo_alerts_collection]
    # Event 10: recorded and sent, the worker died before marking it sent.
    ledger.insert_one({"_id": 10, "partition": 0, "offset_before": 1, "notice": {}, "sent": False})
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    notice = first | {"event_id": 10, "id": ["10"]}
    producer.produce(settings.topic(ALERTS), key=b"10", value=json_codec(ALERTS).encode(notice))
    assert producer.flush(10) == 0
    # Event 11: recorded, the worker died before the send.
    ledger.insert_one({"_id": 11, "partition": 0, "offset_before": 2, "notice": {}, "sent": False})

    write(settings, [prediction(10), prediction(11)])  # both replayed

    ids = [a["event_id"] for a in alerts_on_topic(settings)]
    assert sorted(ids) == [1, 10, 11]  # 10 not repeated, 11 not lost
    assert {d["_id"]: d["sent"] for d in ledger.find()} == {1: True, 10: True, 11: True}
    mongo.close()


def test_a_rebalance_during_the_step_hands_the_alert_to_the_next_owner(settings: Settings) -> None:
    """The old owner recorded the alert, then lost the event before the send: it sends nothing,
    and the owner that processes the event again sends it, once."""

    async def old_owner_step() -> None:
        sink = KafkaAlerts(settings)
        recorded = sink._not_yet_sent

        async def then_rebalance(*args: Any) -> Any:
            unsent = await recorded(*args)
            await sink.fence.close()  # what on_partitions_revoked does
            return unsent

        sink._not_yet_sent = then_rebalance  # type: ignore[method-assign]
        await sink.start()
        try:
            await sink.write([prediction(20)], generation=0)
        finally:
            await sink.stop()

    revoked = metrics.ALERTS_REVOKED._value.get()
    asyncio.run(old_owner_step())
    assert metrics.ALERTS_REVOKED._value.get() == revoked + 1
    assert alerts_on_topic(settings) == []
    ledger = MongoClient(settings.mongo_url)[settings.mongo_database]
    assert [d["sent"] for d in ledger[settings.mongo_alerts_collection].find()] == [False]

    write(settings, [prediction(20)])  # the next owner
    assert [a["event_id"] for a in alerts_on_topic(settings)] == [20]


def test_a_rebalance_waits_for_the_send_in_progress(settings: Settings) -> None:
    """Revoked while the alert is on its way: the revocation returns only once it is
    acknowledged and marked, so the next owner finds it sent."""
    ledger = MongoClient(settings.mongo_url)[settings.mongo_database]

    async def run() -> bool:
        sink = KafkaAlerts(settings)
        send = sink._send

        async def slow_send(*args: Any) -> None:
            sending.set()
            await asyncio.sleep(0.5)
            await send(*args)

        sending = asyncio.Event()
        sink._send = slow_send  # type: ignore[method-assign]
        await sink.start()
        try:
            step = asyncio.create_task(sink.write([prediction(30)], generation=0))
            await sending.wait()
            await sink.fence.close()
            marked = ledger[settings.mongo_alerts_collection].find_one({"_id": 30})
            await step
        finally:
            await sink.stop()
        return marked is not None and marked["sent"]

    assert asyncio.run(run())
    assert [a["event_id"] for a in alerts_on_topic(settings)] == [30]
