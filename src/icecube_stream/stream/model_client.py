"""Async client of the model server (docs/model-api.md): one request per batch of events."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
import numpy as np
from numpy.typing import NDArray

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.stream.assembly import Event
from icecube_stream.stream.frames import PulseFrame, encode_frame
from icecube_stream.stream.schemas import PULSES, AvroCodec, topic_specs

RETRY_STATUS = frozenset({429, 503, 504})
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


class ModelServerUnavailableError(RuntimeError):
    """The server stayed overloaded or unreachable for the whole retry budget."""


class ModelRequestRejectedError(ValueError):
    """The server refused the batch as invalid (4xx other than 429): retrying cannot help."""


class GeometryRejectedError(ModelRequestRejectedError):
    """The server's typed refusal of a whole request: its model knows another detector."""

    def __init__(self, message: str, frame_geometry: str, model_geometry: str) -> None:
        super().__init__(message)
        self.frame_geometry = frame_geometry
        self.model_geometry = model_geometry


def rejection_error(response: httpx.Response) -> ModelRequestRejectedError:
    """The error a refusal stands for: typed when the body says what was refused and why."""
    message = f"{response.status_code}: {response.text[:500]}"
    try:
        body = response.json()
    except ValueError:  # not JSON: a proxy's page, say
        body = None
    rejection = body.get("rejection") if isinstance(body, dict) else None
    if isinstance(rejection, dict) and rejection.get("reason") == "geometry-mismatch":
        return GeometryRejectedError(
            message, str(rejection.get("frame_geometry")), str(rejection.get("model_geometry"))
        )
    return ModelRequestRejectedError(message)


@dataclass(frozen=True)
class ModelAnswer:
    model_name: str
    model_version: str
    event_id: NDArray[np.int64]
    azimuth: NDArray[np.float64]
    zenith: NDArray[np.float64]
    direction: NDArray[np.float64]  # (n, 3)
    angular_uncertainty: NDArray[np.float64]


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


def parse_answer(body: dict[str, object], expected_ids: NDArray[np.int64]) -> ModelAnswer:
    answer = ModelAnswer(
        model_name=str(body["model_name"]),
        model_version=str(body["model_version"]),
        event_id=np.asarray(body["event_id"], np.int64),
        azimuth=np.asarray(body["azimuth"], np.float64),
        zenith=np.asarray(body["zenith"], np.float64),
        direction=np.stack([np.asarray(body[c], np.float64) for c in "xyz"], axis=1),
        angular_uncertainty=np.asarray(body["angular_uncertainty"], np.float64),
    )
    if not np.array_equal(answer.event_id, expected_ids):
        raise ModelRequestRejectedError("the model server answered for other events")
    return answer


class ModelClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = AvroCodec.for_topic(topic_specs(settings.topics_dir)[PULSES])
        self.http = httpx.AsyncClient(
            base_url=settings.model_server_url, timeout=settings.model_timeout_s
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def predict(self, events: list[Event]) -> ModelAnswer:
        """Directions for whole events; backs off on overload, raises after the retry budget."""
        frame = request_frame(events)
        body = encode_frame(frame, self.codec)
        deadline = time.monotonic() + self.settings.model_retry_max_s
        backoff = FIRST_BACKOFF_S
        while True:
            started = time.perf_counter()
            problem = await self._post(body)
            metrics.MODEL_CALL_SECONDS.observe(time.perf_counter() - started)
            if isinstance(problem, httpx.Response):
                return parse_answer(problem.json(), frame.event_id)
            metrics.MODEL_CALL_RETRIES.labels(reason=problem).inc()
            if time.monotonic() + backoff > deadline:
                raise ModelServerUnavailableError(
                    f"model server at {self.settings.model_server_url} still failing ({problem}) "
                    f"after {self.settings.model_retry_max_s:.0f} s of retries"
                )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _post(self, body: bytes) -> httpx.Response | str:
        """The response when it is usable, else a short reason to retry."""
        try:
            response = await self.http.post(
                "/predict", content=body, headers={"content-type": "application/octet-stream"}
            )
        except httpx.TransportError as error:
            return type(error).__name__
        if response.status_code in RETRY_STATUS:
            return str(response.status_code)
        if response.status_code != 200:
            raise rejection_error(response)
        return response
