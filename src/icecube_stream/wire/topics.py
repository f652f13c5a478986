"""The topic registry: every topic of topics/topics.yaml, and the one place that builds codecs.

The declarations ship inside the package (`wire/topics/`, also reachable as `topics/` at the top
of a checkout), so an installed worker finds them without a path into a source tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from icecube_stream.wire.codec import AvroCodec, JsonCodec

PULSES = "icecube.pulses"
PREDICTIONS = "icecube.predictions"
DLQ = "icecube.pulses.dlq"
ALERTS = "icecube.alerts"

#: The declarations shipped with the package (Settings.topics_dir may name another folder).
TOPICS_DIR = Path(__file__).with_name("topics")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]
    key_format: str
    value_schema_id: int | None
    value_schema: dict[str, Any] | None
    #: Older value schemas by id, still decoded (into value_schema).
    readable_schemas: dict[int, dict[str, Any]]
    #: The JSON Schema of a JSON-valued topic (format: json), else None.
    json_schema: dict[str, Any] | None = None


def load_topics(topics_dir: Path) -> dict[str, TopicSpec]:
    """Every topic declared in topics_dir/topics.yaml, by name, with its value schema parsed."""
    document = yaml.safe_load((topics_dir / "topics.yaml").read_text())
    specs = {}
    for entry in document["topics"]:
        value = entry["value"]
        schema = None
        if "schema" in value:
            schema = json.loads((topics_dir / value["schema"]).read_text())
        readable = {
            int(old["schema_id"]): json.loads((topics_dir / old["schema"]).read_text())
            for old in value.get("readable", [])
        }
        json_schema = None
        if "json_schema" in value:
            json_schema = json.loads((topics_dir / value["json_schema"]).read_text())
        specs[entry["name"]] = TopicSpec(
            name=entry["name"],
            partitions=int(entry["partitions"]),
            replication_factor=int(entry["replication_factor"]),
            config={str(k): str(v) for k, v in entry.get("config", {}).items()},
            key_format=entry["key"]["format"],
            value_schema_id=value.get("schema_id"),
            value_schema=schema,
            readable_schemas=readable,
            json_schema=json_schema,
        )
    return specs


@cache
def topic_specs(topics_dir: Path = TOPICS_DIR) -> dict[str, TopicSpec]:
    return load_topics(topics_dir)


@cache
def topic_codec(topic: str, topics_dir: Path = TOPICS_DIR) -> AvroCodec:
    """The value codec of a declared topic: its schema, and the older ones it still reads."""
    spec = topic_specs(topics_dir)[topic]
    if spec.value_schema is None or spec.value_schema_id is None:
        raise ValueError(f"topic {spec.name} has no Avro value schema")
    return AvroCodec(spec.value_schema_id, spec.value_schema, spec.readable_schemas)


@cache
def json_codec(topic: str, topics_dir: Path = TOPICS_DIR) -> JsonCodec:
    """The value codec of a declared JSON topic, checking its JSON Schema."""
    spec = topic_specs(topics_dir)[topic]
    if spec.json_schema is None:
        raise ValueError(f"topic {spec.name} has no JSON Schema")
    return JsonCodec(spec.json_schema)
