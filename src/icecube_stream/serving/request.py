"""Checking a /predict body before any model work: every refusal names what is wrong.

The body is an Avro pulse frame (docs/model-api.md). It is only ever read by the Avro decoder and
numpy.frombuffer, never unpickled, whatever the Content-Type says; a pickle content type is
refused up front so such a client gets a clear answer instead of an Avro error.
"""

from __future__ import annotations

import numpy as np

from icecube_stream.events.geometry import Geometry, geometry_name
from icecube_stream.wire.codec import AvroCodec, MalformedMessageError
from icecube_stream.wire.frame import PulseFrame, decode_frame
from icecube_stream.wire.model_api import REJECTION_STATUS, GeometryRejection
from icecube_stream.wire.reasons import Reason

#: Content types a client may send the frame with; a missing header is accepted too.
ACCEPTED_TYPES = frozenset({"application/octet-stream", "avro/binary", "application/avro"})


class BadRequestError(ValueError):
    """A request the server refuses; `status` is the HTTP code, `reason` a short metric label.

    `rejection` makes it typed: a JSON object the client acts on (docs/model-api.md).
    """

    def __init__(
        self, status: int, reason: str, message: str, rejection: GeometryRejection | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.rejection = rejection


def check_content_type(content_type: str | None) -> None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media and media not in ACCEPTED_TYPES:
        raise BadRequestError(
            415,
            "content-type",
            f"Content-Type {media!r} is not accepted: send the Avro pulse frame as "
            "application/octet-stream (see docs/model-api.md); nothing is ever unpickled",
        )


def parse_request(
    body: bytes,
    content_type: str | None,
    codec: AvroCodec,
    geometry: Geometry,
    max_body_bytes: int,
) -> PulseFrame:
    """The events of one /predict body, or BadRequestError saying why they cannot be served."""
    check_content_type(content_type)
    if len(body) > max_body_bytes:
        raise BadRequestError(
            413,
            "too-large",
            f"body of {len(body)} bytes exceeds the server's limit of {max_body_bytes} bytes; "
            "send fewer events per request",
        )
    if not body:
        raise BadRequestError(400, "empty-body", "empty body: expected an Avro pulse frame")
    try:
        frame = decode_frame(body, codec)
    except MalformedMessageError as error:
        raise BadRequestError(400, error.reason, str(error)) from None
    return check_frame(frame, geometry)


def check_frame(frame: PulseFrame, geometry: Geometry) -> PulseFrame:
    """Whole events of the model's detector; decode_frame has checked the array lengths. A frame
    of unknown geometry (None) is served: old producers send that. Refusals of single events
    are `check_events`' job: the rest of the request is still served."""
    if frame.geometry_id is not None and frame.geometry_id != geometry.identity:
        raise BadRequestError(
            REJECTION_STATUS,
            Reason.GEOMETRY_MISMATCH,
            f"the frame's geometry {frame.geometry_id} is not the served model's "
            f"{geometry_name(geometry.identity)}: its sensors would be misplaced. Serve a model "
            "trained for the frame's detector, then replay the frames from the dead-letter topic",
            rejection=GeometryRejection(frame.geometry_id, geometry.identity),
        )
    split = frame.n_parts != 1
    if split.any():
        first = int(np.flatnonzero(split)[0])
        raise BadRequestError(
            400,
            "split-event",
            f"event {int(frame.event_id[first])} is one part of {int(frame.n_parts[first])}: "
            "the model server takes whole events only (n_parts = 1)",
        )
    return frame
