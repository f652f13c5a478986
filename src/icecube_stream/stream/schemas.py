"""Topic definitions and Avro value codecs, loaded from the checked-in `topics/` folder.

Values are framed like Confluent's wire format (magic byte 0, big-endian int32 schema id, Avro
binary), with the ids fixed in topics/topics.yaml. A topic's older schemas stay readable: their
records are resolved into the current schema (new fields take their defaults), so a consumer
sees one record shape whatever produced the message. Nothing received is ever unpickled: a body
that does not decode with a known schema raises MalformedMessageError with a short reason code,
which is what the dead-letter topic records.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import yaml

PULSES = "icecube.pulses"
PREDICTIONS = "icecube.predictions"
DLQ = "icecube.pulses.dlq"

MAGIC = 0
HEADER = struct.Struct(">bI")


class MalformedMessageError(ValueError):
    """A message that cannot be processed; `reason` is a short code for the DLQ header."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
        specs[entry["name"]] = TopicSpec(
            name=entry["name"],
            partitions=int(entry["partitions"]),
            replication_factor=int(entry["replication_factor"]),
            config={str(k): str(v) for k, v in entry.get("config", {}).items()},
            key_format=entry["key"]["format"],
            value_schema_id=value.get("schema_id"),
            value_schema=schema,
            readable_schemas=readable,
        )
    return specs


class AvroCodec:
    """Encode records with the current schema; decode the current and any older readable one."""

    def __init__(
        self,
        schema_id: int,
        schema: dict[str, Any],
        readable: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        self.schema_id = schema_id
        self.schema = fastavro.parse_schema(schema)
        self.header = HEADER.pack(MAGIC, schema_id)
        self.writers = {schema_id: self.schema} | {
            old_id: fastavro.parse_schema(old) for old_id, old in (readable or {}).items()
        }

    @classmethod
    def for_topic(cls, spec: TopicSpec) -> AvroCodec:
        if spec.value_schema is None or spec.value_schema_id is None:
            raise ValueError(f"topic {spec.name} has no Avro value schema")
        return cls(spec.value_schema_id, spec.value_schema, spec.readable_schemas)

    def encode_as(self, schema_id: int, record: dict[str, Any]) -> bytes:
        """A record in an older readable schema: what a producer of that version sent."""
        buffer = io.BytesIO()
        buffer.write(HEADER.pack(MAGIC, schema_id))
        fastavro.schemaless_writer(buffer, self.writers[schema_id], record)
        return buffer.getvalue()

    def encode(self, record: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(self.header)
        fastavro.schemaless_writer(buffer, self.schema, record)
        return buffer.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        if len(data) < HEADER.size:
            raise MalformedMessageError("not-avro", f"{len(data)} bytes is shorter than the header")
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise MalformedMessageError("not-avro", f"first byte {magic:#04x}, expected 0x00")
        writer = self.writers.get(schema_id)
        if writer is None:
            raise MalformedMessageError(
                "unknown-schema", f"schema id {schema_id}, this worker reads {sorted(self.writers)}"
            )
        reader = None if schema_id == self.schema_id else self.schema
        buffer = io.BytesIO(data)
        buffer.seek(HEADER.size)
        try:
            record = fastavro.schemaless_reader(buffer, writer, reader)
        except (EOFError, ValueError, UnicodeDecodeError, IndexError, struct.error) as error:
            raise MalformedMessageError(
                "corrupt-body", f"Avro body does not decode: {error}"
            ) from None
        if buffer.tell() != len(data):
            raise MalformedMessageError(
                "corrupt-body", f"{len(data) - buffer.tell()} trailing bytes"
            )
        if not isinstance(record, dict):
            raise MalformedMessageError("corrupt-body", "Avro body is not a record")
        return record


@cache
def topic_specs(topics_dir: Path) -> dict[str, TopicSpec]:
    return load_topics(topics_dir)
