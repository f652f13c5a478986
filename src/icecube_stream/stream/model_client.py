"""Async client of the model server (docs/model-api.md): one request per batch of events.

Only a typed refusal names events the server will not serve: events in the answer's `rejected`
list, or a whole request of another detector (409 geometry-mismatch). Every other answer that is
not 200 (a 500 from a bug, 502/404 from a proxy or a wrong route, 400 from a version mismatch)
says nothing about the events, so it is retried with back-off and counted, never dropped.
"""

from __future__ import annotations

import time

import httpx
import numpy as np
from numpy.typing import NDArray
from tenacity import AsyncRetrying, retry_if_exception_type, stop_before_delay, wait_exponential

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.connections import model_server_headers
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


class ModelClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = topic_codec(PULSES, settings.topics_dir)
        self.http = httpx.AsyncClient(
            base_url=settings.model_server_url,
            timeout=settings.model_timeout_s,
            headers=model_server_headers(settings),
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def predict(self, frame: PulseFrame) -> PredictionBatch:
        """Directions for a frame of whole events (each id once); backs off on any failure that
        is not a typed refusal, and raises ModelServerUnavailableError after the retry budget."""
        body = encode_frame(frame, self.codec)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_RetryableError),
            wait=wait_exponential(multiplier=FIRST_BACKOFF_S, max=MAX_BACKOFF_S),
            stop=stop_before_delay(self.settings.model_retry_max_s),
            reraise=True,
        )
        try:
            return await retrying(self._post, body, frame.event_id)
        except _RetryableError as failure:
            raise ModelServerUnavailableError(
                f"model server at {self.settings.model_server_url} still failing ({failure}) "
                f"after {self.settings.model_retry_max_s:.0f} s of retries"
            ) from None

    async def _post(self, body: bytes, event_ids: NDArray[np.int64]) -> PredictionBatch:
        """The answer when usable; _RetryableError with a short reason (a metric label) if not."""
        started = time.perf_counter()
        try:
            return await self._answer(body, event_ids)
        except _RetryableError as failure:
            metrics.MODEL_CALL_RETRIES.labels(reason=str(failure)).inc()
            raise
        finally:
            metrics.MODEL_CALL_SECONDS.observe(time.perf_counter() - started)

    async def _answer(self, body: bytes, event_ids: NDArray[np.int64]) -> PredictionBatch:
        try:
            response = await self.http.post(
                "/predict", content=body, headers={"content-type": "application/octet-stream"}
            )
        except httpx.TransportError as error:
            raise _RetryableError(type(error).__name__) from None
        if response.status_code == REJECTION_STATUS:
            refusal = _geometry_rejection(response)
            if refusal is not None:
                raise refusal
        if response.status_code != 200:
            raise _RetryableError(str(response.status_code))
        try:
            return PredictionBatch.from_json(response.json(), event_ids)
        except (ValueError, KeyError, TypeError) as error:  # AnswerMismatchError included
            raise _RetryableError(type(error).__name__) from None


class _RetryableError(Exception):
    """An answer that says nothing about the events; its message is why, a metric label."""


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
