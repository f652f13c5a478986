"""The ASGI app BentoML mounts: a raw-body /predict, /reload and /model.

BentoML's typed APIs want JSON or multipart bodies; a mounted Starlette app reads the Avro frame
as bytes (docs/model-api.md says why that encoding). BentoML's middlewares still wrap it, so its
`traffic` limits (429 over max_concurrency, 504 past the timeout) and request metrics apply.
Decoding and inference run in a worker thread so /readyz and /metrics answer during a long batch.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.serving.holder import ModelHolder, ModelNotReadyError, ServedModel
from icecube_stream.serving.request import BadRequestError, parse_request
from icecube_stream.wire.codec import AvroCodec
from icecube_stream.wire.frame import select_events
from icecube_stream.wire.model_api import GeometryRejection, PredictionBatch
from icecube_stream.wire.validation import Limits, check_events

log = logging.getLogger(__name__)

#: Seconds a client is told to wait when no model is loaded yet.
RETRY_AFTER_S = 2


def _error(
    status: int,
    message: str,
    rejection: GeometryRejection | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if rejection is not None:
        body["rejection"] = rejection.as_json()
    return JSONResponse(body, status_code=status, headers=headers)


def _unauthorised(request: Request, settings: Settings) -> Response | None:
    """The refusal of a state-changing request without the server's token, else None; with
    no token set, such routes are off."""
    if settings.model_server_token is None:
        return _error(403, "this route is off: set ICECUBE_MODEL_SERVER_TOKEN on the model "
                      "server and send it as 'Authorization: Bearer <token>'")  # fmt: skip
    return _without_token(request, settings)


def _without_token(request: Request, settings: Settings) -> Response | None:
    """401 unless the request carries the server's token (None when it does or none is set):
    /predict with a token set, so no one else can make the server compute."""
    token = settings.model_server_token
    if token is None:
        return None
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme != "Bearer" or not hmac.compare_digest(sent.strip().encode(), expected):
        return _error(401, "missing or wrong token ('Authorization: Bearer <token>')",
                      headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    return None


async def _read_at_most(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it passes the limit: a chunked body has no length to check
    up front, so reading stops there instead of buffering whatever the client sends."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class RefusePickleMiddleware:
    """Refuse any request that declares a pickle body, on every route (BentoML's own included).

    Nothing here unpickles, but BentoML has had pickle-body bugs behind its own routes; refusing
    the content type in front of everything means no such body reaches any handler.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", []):
                if name.lower() == b"content-type" and b"pickle" in value.lower():
                    metrics.MODEL_SERVER_REJECTED.labels(reason="pickle").inc()
                    response = _error(415, "pickle bodies are never accepted")
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def create_app(holder: ModelHolder, settings: Settings, codec: AvroCodec) -> Starlette:
    metrics.init_known_labels(metrics.MODEL_SERVER_KNOWN_LABELS)

    def serve(served: ServedModel, body: bytes, content_type: str | None) -> dict[str, Any]:
        """Serve the events that pass the checks; refuse the others by name in the answer."""
        geometry = served.model.geometry
        request = parse_request(
            body,
            content_type,
            codec,
            geometry=geometry,
            max_body_bytes=settings.model_server_max_body_bytes,
        )
        limits = Limits(geometry.n_sensors, settings.max_event_pulses, settings.max_event_span_ns)
        verdict = check_events(request, limits)
        accepted = select_events(request, verdict.passed)
        if accepted.n_events:
            served, prediction = holder.predict(accepted, served)
            answer = PredictionBatch(
                served.name,
                served.version,
                accepted.event_id,
                prediction.azimuth,
                prediction.zenith,
                prediction.direction,
                prediction.sigma,
                refused=tuple(verdict.problems),
                track_probability=prediction.track_probability,
            ).finite_only()
        else:
            answer = PredictionBatch.refusing(served.name, served.version, verdict.problems)
        for sigma in answer.angular_uncertainty.tolist():  # no bulk observe in the client
            metrics.MODEL_SERVER_UNCERTAINTY.observe(sigma)
        metrics.MODEL_SERVER_BATCH_EVENTS.observe(request.n_events)
        metrics.MODEL_SERVER_EVENTS.inc(answer.n_events)
        for problem in answer.refused:
            metrics.MODEL_SERVER_REFUSED_EVENTS.labels(reason=problem.reason).inc()
        return answer.as_json()

    async def predict(request: Request) -> Response:
        refusal = _without_token(request, settings)
        if refusal is not None:  # before the body is read or any model code runs
            metrics.MODEL_SERVER_REJECTED.labels(reason="unauthorised").inc()
            return refusal
        return await authorised_predict(request)

    async def authorised_predict(request: Request) -> Response:
        started = time.perf_counter()
        served = holder.current
        if served is None:
            metrics.MODEL_SERVER_REJECTED.labels(reason="not-ready").inc()
            return _error(
                503,
                f"model not ready: {holder.last_error}",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        body = await _read_at_most(request, settings.model_server_max_body_bytes)
        if body is None:
            metrics.MODEL_SERVER_REJECTED.labels(reason="too-large").inc()
            return _error(
                413,
                f"body exceeds the server's limit of {settings.model_server_max_body_bytes} "
                "bytes; send fewer events per request",
            )
        try:
            payload = await anyio.to_thread.run_sync(
                serve, served, body, request.headers.get("content-type")
            )
        except BadRequestError as error:
            metrics.MODEL_SERVER_REJECTED.labels(reason=error.reason).inc()
            return _error(error.status, error.message, error.rejection)
        except ModelNotReadyError as error:
            return _error(503, str(error), headers={"Retry-After": str(RETRY_AFTER_S)})
        except Exception:  # a bug must answer 500, not take the server down
            log.exception("prediction failed")  # the details go to the log, not to the client
            return _error(500, "prediction failed: an error inside the model server (see its log)")
        metrics.MODEL_SERVER_REQUEST_SECONDS.observe(time.perf_counter() - started)
        return JSONResponse(payload)

    async def reload(request: Request) -> Response:
        refusal = _unauthorised(request, settings)
        if refusal is not None:
            return refusal
        if await request.body():
            return _error(400, "POST /reload takes no body (use ?force=true to reload anyway)")
        force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
        outcome = await anyio.to_thread.run_sync(lambda: holder.reload(force=force))
        body = outcome.as_dict()
        if outcome.outcome == "failed":  # the cause, with its paths and URIs, is in the log
            body["detail"] = "the new version did not load; the serving one stays (see the log)"
            return JSONResponse({**body, "error": body["detail"]}, status_code=500)
        return JSONResponse(body)

    async def model_info(_: Request) -> Response:
        served = holder.current
        return JSONResponse(
            {
                "ready": served is not None,
                "model_name": served.name if served else None,
                "model_version": served.version if served else None,
                "model_uri": served.uri if served else None,
                "geometry_id": served.model.geometry.identity if served else None,
                "last_error": holder.last_error,
            }
        )

    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/reload", reload, methods=["POST"]),
            Route("/model", model_info, methods=["GET"]),
        ]
    )
