"""MongoDB as a sink: one document per event, keyed by its id, whatever is replayed."""

from __future__ import annotations

import time
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.connections import mongo_options

DUPLICATE_KEY = 11000


class MongoPredictions:
    name = "mongo"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: AsyncMongoClient[dict[str, Any]] | None = None

    @property
    def collection(self) -> AsyncCollection[dict[str, Any]]:
        if self.client is None:
            raise RuntimeError("MongoPredictions used before start")
        return self.client[self.settings.mongo_database][self.settings.mongo_collection]

    async def start(self) -> None:
        """Connect and make sure of the unique index; safe to call again after a failure."""
        if self.client is None:
            self.client = AsyncMongoClient(self.settings.mongo_url, **mongo_options(self.settings))
        await self.collection.create_index([("event_id", ASCENDING)], unique=True)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def write(self, records: list[dict[str, Any]], generation: int) -> None:
        """Insert keyed by event_id (`_id`); a replayed event's duplicate-key error is the
        idempotence working, so the document already there stays: one document per event."""
        started = time.perf_counter()
        written_at = time.time_ns()
        documents = [
            {"_id": r["event_id"], **r, "status": "predicted", "written_at_ns": written_at}
            for r in records
        ]
        try:
            await self.collection.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            others = [e for e in error.details["writeErrors"] if e["code"] != DUPLICATE_KEY]
            if others or error.details.get("writeConcernErrors"):
                raise
        metrics.MONGO_WRITE_SECONDS.observe(time.perf_counter() - started)
