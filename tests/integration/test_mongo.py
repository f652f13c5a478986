"""The MongoDB-wire server does what the prediction sink needs: unique index, upserts, queries."""

import uuid
from collections.abc import Iterator

import pytest
from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from icecube_stream.config import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def predictions(stack: Settings) -> Iterator[Collection[dict[str, object]]]:
    client: MongoClient[dict[str, object]] = MongoClient(stack.mongo_url)
    collection = client[stack.mongo_database][f"it_{uuid.uuid4().hex[:8]}"]
    collection.create_index([("event_id", ASCENDING)], unique=True)
    yield collection
    collection.drop()
    client.close()


def test_insert_query_and_unique_event_id(predictions: Collection[dict[str, object]]) -> None:
    predictions.insert_many([{"event_id": i, "zenith": i / 10} for i in range(100)])
    assert predictions.count_documents({}) == 100
    found = predictions.find_one({"event_id": 42})
    assert found is not None
    assert found["zenith"] == pytest.approx(4.2)
    assert [
        d["event_id"] for d in predictions.find({"zenith": {"$gte": 9.7}}).sort("event_id")
    ] == [97, 98, 99]
    with pytest.raises(DuplicateKeyError):
        predictions.insert_one({"event_id": 42, "zenith": 0.0})


def test_upsert_keeps_one_document_per_event(predictions: Collection[dict[str, object]]) -> None:
    for zenith in (1.0, 2.0, 3.0):
        predictions.update_one({"event_id": 7}, {"$set": {"zenith": zenith}}, upsert=True)
    assert predictions.count_documents({"event_id": 7}) == 1
    document = predictions.find_one({"event_id": 7})
    assert document is not None
    assert document["zenith"] == 3.0
    index_keys = [index["key"] for index in predictions.list_indexes()]
    assert {"event_id": 1} in [dict(key) for key in index_keys]
