"""`predictions get`: one event's prediction from MongoDB, by its `_id` (the event id).

FerretDB on SQLite scans the collection for it (docs/streaming.md): milliseconds on a demo's
collection, seconds at a million documents; MongoDB answers from its `_id` index.
"""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from icecube_stream.config import Settings
from icecube_stream.connections import mongo_options

TIMEOUT_MS = 5000


class MongoUnreachableError(RuntimeError):
    """MongoDB did not answer; the message names the address."""


def find_prediction(settings: Settings, event_id: int) -> dict[str, Any] | None:
    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongo_url,
        serverSelectionTimeoutMS=TIMEOUT_MS,
        connectTimeoutMS=TIMEOUT_MS,
        **mongo_options(settings),
    )
    try:
        collection = client[settings.mongo_database][settings.mongo_collection]
        return collection.find_one({"_id": event_id}, {"_id": False})
    except PyMongoError as error:
        raise MongoUnreachableError(
            f"MongoDB at {settings.mongo_url} does not answer ({type(error).__name__}); is it "
            "up? `icecube-stream stack status`"
        ) from None
    finally:
        client.close()
