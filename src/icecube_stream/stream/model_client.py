"""Async client of the model server (docs/model-api.md): one request per batch of events.

Only a typed refusal names events the server will not serve: events in the answer's `rejected`
list, or a whole request of another detector (409 geometry-mismatch). Every other answer that is
not 200 (a 500 from a bug, 502/404 from a proxy or a wrong route, 400 from a version mismatch)
says nothing about the events, so it is retried with back-off and counted, never dropped.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
from numpy.typing import NDArray

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.stream.assembly import Event
from icecube_stream.wire.frame import PulseFrame, encode_frame
from icecube_stream.wire.model_api import REJECTION_STATUS, GeometryRejection, PredictionBatch
from icecube_stream.wire.topics import PULSES, topic_codec

FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


class ModelServerUnavailableError(RuntimeError):
    """The server stayed overloaded or unreachable for the whole retry budget."""


class GeometryRejectedError(ValueError):
    """The server's typed refusal of a whole request: its model knows another detector."""

    def __init__(self, message: str, rejection: GeometryRejection) -> None:
        super().__init__(message)
        self.rejection = rejection


def request_frame(events: list[Event]) -> PulseFrame:
    """Whole events of one geometry as one frame: the request body format of the model server."""
    n = len(events)
    return PulseFrame(
        source="worker",
        emitted_at_ns=time.time_ns(),
        event_id=np.array([e.event_id for e in events], np.int64),
        part=np.zeros(n, np.int32),
        n_parts=np.ones(n, np.int32),
        pulse_count=np.array([e.n_pulses for e in events], np.int32),
        sensor_id=np.concatenate([e.sensor_id for e in events]),
        time=np.concatenate([e.time for e in events]),
        charge=np.concatenate([e.charge for e in events]),
        auxiliary=np.concatenate([e.auxiliary for e in events]),
        geometry_id=events[0].geometry_id,
    )


class ModelClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = topic_codec(PULSES, settings.topics_dir)
        self.http = httpx.AsyncClient(
            base_url=settings.model_server_url, timeout=settings.model_timeout_s
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def predict(self, events: list[Event]) -> PredictionBatch:
        """Directions for whole events (each id once); backs off on any failure that is not a
        typed refusal, and raises ModelServerUnavailableError after the retry budget."""
        frame = request_frame(events)
        body = encode_frame(frame, self.codec)
        deadline = time.monotonic() + self.settings.model_retry_max_s
        backoff = FIRST_BACKOFF_S
        while True:
            started = time.perf_counter()
            problem = await self._post(body, frame.event_id)
            metrics.MODEL_CALL_SECONDS.observe(time.perf_counter() - started)
            if isinstance(problem, PredictionBatch):
                return problem
            metrics.MODEL_CALL_RETRIES.labels(reason=problem).inc()
            if time.monotonic() + backoff > deadline:
                raise ModelServerUnavailableError(
                    f"model server at {self.settings.model_server_url} still failing ({problem}) "
                    f"after {self.settings.model_retry_max_s:.0f} s of retries"
                )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _post(self, body: bytes, event_ids: NDArray[np.int64]) -> PredictionBatch | str:
        """The answer when it is usable, else a short reason to retry."""
        try:
            response = await self.http.post(
                "/predict", content=body, headers={"content-type": "application/octet-stream"}
            )
        except httpx.TransportError as error:
            return type(error).__name__
        if response.status_code == REJECTION_STATUS:
            refusal = _geometry_rejection(response)
            if refusal is not None:
                raise refusal
        if response.status_code != 200:
            return str(response.status_code)
        try:
            return PredictionBatch.from_json(response.json(), event_ids)
        except (ValueError, KeyError, TypeError) as error:  # AnswerMismatchError included
            return type(error).__name__


def _geometry_rejection(response: httpx.Response) -> GeometryRejectedError | None:
    """The typed refusal a 409 carries, or None when the body is not one (a proxy's page)."""
    try:
        body = response.json()
    except ValueError:  # not JSON
        return None
    rejection = GeometryRejection.from_json(body)
    if rejection is None:
        return None
    return GeometryRejectedError(
        f"{response.status_code}: {body.get('error', '')}"[:500], rejection
    )
