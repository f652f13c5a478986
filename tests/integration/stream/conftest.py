import uuid
from collections.abc import Iterator

import pytest
from pymongo import MongoClient

from icecube_stream.config import Settings
from icecube_stream.stream import topics


@pytest.fixture
def private(stack: Settings) -> Iterator[Settings]:
    """The live stack with topics and a MongoDB database of this test's own."""
    tag = uuid.uuid4().hex[:8]
    settings = stack.model_copy(
        update={"topic_prefix": f"it-{tag}.", "mongo_database": f"it_{tag}"}
    )
    topics.apply(settings)
    yield settings
    MongoClient(settings.mongo_url).drop_database(settings.mongo_database)
