"""A minimal Faust worker for the integration test: counts the records of one topic and writes
the count to a file once it has seen the expected number."""

import os
from pathlib import Path

import faust

topic_name = os.environ["COUNTER_TOPIC"]
expected = int(os.environ["COUNTER_EXPECTED"])
done_file = Path(os.environ["COUNTER_DONE_FILE"])

app = faust.App(
    f"counter-{topic_name}",
    broker=f"kafka://{os.environ['COUNTER_BOOTSTRAP']}",
    store="memory://",
    web_enabled=False,
    topic_partitions=3,
)
topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")
keys: set[bytes] = set()


@app.agent(topic)
async def count(stream: faust.Stream) -> None:
    async for key, _value in stream.items():
        keys.add(key)
        if len(keys) == expected:
            done_file.write_text(str(len(keys)))
