"""Why a message or an event is refused: the one list of reason codes.

The same codes name the dead-letter record's `dlq.reason` header, the model server's refusal of
an event by name, and the `reason` label of the metrics that count both, so an operator who
sees one can find the others.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # The message is not a pulse frame.
    NOT_AVRO = "not-avro"
    UNKNOWN_SCHEMA = "unknown-schema"
    CORRUPT_BODY = "corrupt-body"
    INCONSISTENT_FRAME = "inconsistent-frame"
    BAD_AUXILIARY = "bad-auxiliary"
    # One event cannot be reconstructed (wire/validation.py).
    EMPTY_EVENT = "empty-event"
    TOO_MANY_PULSES = "too-many-pulses"
    UNKNOWN_SENSOR = "unknown-sensor"
    NON_FINITE = "non-finite"
    NEGATIVE_CHARGE = "negative-charge"
    TIME_OUT_OF_RANGE = "time-out-of-range"
    EVENT_TOO_LONG = "event-too-long"
    DUPLICATE_EVENT_ID = "duplicate-event-id"  # one (event id, part) twice in a frame
    # The parts of a split event do not make one event (stream/assembly.py).
    PARTS_DISAGREE = "parts-disagree"
    LATE_PART = "late-part"
    EVENT_ID_REUSED = "event-id-reused"
    PARTS_ACROSS_PARTITIONS = "parts-across-partitions"
    # The model server refused it.
    NON_FINITE_OUTPUT = "non-finite-output"
    GEOMETRY_MISMATCH = "geometry-mismatch"  # the frame's detector is not the served model's


#: The checks of wire/validation.py, in the order they are tried.
EVENT_CHECKS = (
    Reason.EMPTY_EVENT,
    Reason.TOO_MANY_PULSES,
    Reason.UNKNOWN_SENSOR,
    Reason.NON_FINITE,
    Reason.NEGATIVE_CHARGE,
    Reason.TIME_OUT_OF_RANGE,
    Reason.EVENT_TOO_LONG,
)
#: What the model server may name in an answer's `rejected` list.
SERVER_REFUSALS = (*EVENT_CHECKS, Reason.DUPLICATE_EVENT_ID, Reason.NON_FINITE_OUTPUT)
