"""Avro values framed as Kafka's schema-registry clients frame them; JSON values checked by a
JSON Schema (the alerts topic, for consumers outside this project).

Values are framed like Confluent's wire format (magic byte 0, big-endian int32 schema id, Avro
binary), with the ids fixed in wire/topics/topics.yaml. A topic's older schemas stay readable: their
records are resolved into the current schema (new fields take their defaults), so a consumer
sees one record shape whatever produced the message. Nothing received is ever unpickled: a body
that does not decode with a known schema raises MalformedMessageError with a short reason code,
which is what the dead-letter topic records.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
import jsonschema

from icecube_stream.wire.reasons import Reason

MAGIC = 0
HEADER = struct.Struct(">bI")


class MalformedMessageError(ValueError):
    """A message that cannot be processed; `reason` is a short code for the DLQ header."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
            raise MalformedMessageError(
                Reason.NOT_AVRO, f"{len(data)} bytes is shorter than the header"
            )
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise MalformedMessageError(Reason.NOT_AVRO, f"first byte {magic:#04x}, expected 0x00")
        writer = self.writers.get(schema_id)
        if writer is None:
            raise MalformedMessageError(
                Reason.UNKNOWN_SCHEMA,
                f"schema id {schema_id}, this worker reads {sorted(self.writers)}",
            )
        reader = None if schema_id == self.schema_id else self.schema
        buffer = io.BytesIO(data)
        buffer.seek(HEADER.size)
        try:
            record = fastavro.schemaless_reader(buffer, writer, reader)
        except (EOFError, ValueError, UnicodeDecodeError, IndexError, struct.error) as error:
            raise MalformedMessageError(
                Reason.CORRUPT_BODY, f"Avro body does not decode: {error}"
            ) from None
        if buffer.tell() != len(data):
            raise MalformedMessageError(
                Reason.CORRUPT_BODY, f"{len(data) - buffer.tell()} trailing bytes"
            )
        if not isinstance(record, dict):
            raise MalformedMessageError(Reason.CORRUPT_BODY, "Avro body is not a record")
        return record


class JsonCodec:
    """UTF-8 JSON values that must satisfy a JSON Schema both ways: a record that does not is a
    bug here (encode) or a message this project did not write (decode)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        jsonschema.Draft202012Validator.check_schema(schema)
        self.validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )

    def problems(self, record: Any) -> list[str]:
        """Every way the record breaks the schema, as 'path: message' lines (empty: valid)."""
        return [
            f"{'/'.join(map(str, error.absolute_path)) or '(record)'}: {error.message}"
            for error in self.validator.iter_errors(record)
        ]

    def encode(self, record: dict[str, Any]) -> bytes:
        problems = self.problems(record)
        if problems:
            raise ValueError(f"record breaks the topic's JSON Schema: {'; '.join(problems)}")
        return json.dumps(record, separators=(",", ":"), allow_nan=False).encode()

    def decode(self, data: bytes) -> dict[str, Any]:
        try:
            record = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise MalformedMessageError(Reason.CORRUPT_BODY, f"not JSON: {error}") from None
        problems = self.problems(record)
        if problems:
            raise MalformedMessageError(Reason.CORRUPT_BODY, "; ".join(problems))
        return dict(record)
