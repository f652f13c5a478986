"""Only a typed refusal may dead-letter events; every other failed answer is retried."""

import asyncio
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from icecube_stream.config import Settings
from icecube_stream.stream.events import Events
from icecube_stream.stream.model_client import (
    GeometryRejectedError,
    ModelClient,
    ModelServerUnavailableError,
)
from icecube_stream.wire.frame import PulseFrame
from icecube_stream.wire.model_api import GeometryRejection, PredictionBatch

pytestmark = pytest.mark.unit


def answer(ids: list[int], rejected: list[dict[str, object]] = ()) -> dict[str, object]:  # type: ignore[assignment]
    n = len(ids)
    return {"model_name": "m", "model_version": "1", "event_id": ids, "azimuth": [0.0] * n,
            "zenith": [0.0] * n, "x": [0.0] * n, "y": [0.0] * n, "z": [1.0] * n,
            "angular_uncertainty": [0.1] * n, "rejected": list(rejected)}  # fmt: skip


def client(responses: list[httpx.Response], budget_s: float = 30.0) -> tuple[ModelClient, list]:  # type: ignore[type-arg]
    """A ModelClient whose server answers `responses` in turn (the last one from then on)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses[min(len(seen), len(responses)) - 1]

    model = ModelClient(Settings(model_retry_max_s=budget_s))
    model.http = httpx.AsyncClient(base_url="http://model", transport=httpx.MockTransport(handle))
    return model, seen


@pytest.fixture
def events(make_batch: Callable[[list[int]], object]) -> PulseFrame:
    return Events.of_batch(make_batch([3, 4, 5])).frame("test", 0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"error": "prediction failed"}),
        httpx.Response(502, text="<html>bad gateway</html>"),
        httpx.Response(404, text="not found"),
        httpx.Response(400, json={"error": "a newer worker's frame"}),
        httpx.Response(409, json={"rejection": {"reason": "something-else"}}),
        httpx.Response(200, json=answer([1000, 1001])),  # an event unaccounted for
        httpx.Response(200, text="not json"),
    ],
)
def test_an_answer_that_names_no_event_is_retried_not_dropped(
    failure: httpx.Response,
    events: PulseFrame,
) -> None:
    model, seen = client([failure, failure, httpx.Response(200, json=answer([1000, 1001, 1002]))])
    result = asyncio.run(model.predict(events))
    assert isinstance(result, PredictionBatch) and result.event_id.tolist() == [1000, 1001, 1002]
    assert len(seen) == 3


def test_events_refused_by_name_come_back_with_their_reasons(events: PulseFrame) -> None:
    refusal = {"event_id": 1001, "reason": "non-finite-output", "detail": "event 1001: NaN"}
    model, _ = client([httpx.Response(200, json=answer([1000, 1002], [refusal]))])
    result = asyncio.run(model.predict(events))
    assert result.event_id.tolist() == [1000, 1002]
    assert [(r.event_id, r.reason) for r in result.refused] == [(1001, "non-finite-output")]


def test_a_typed_geometry_refusal_is_raised_at_once(events: PulseFrame) -> None:
    rejection = {"reason": "geometry-mismatch", "frame_geometry": "f" * 16,
                 "model_geometry": "m" * 16}  # fmt: skip
    model, seen = client([httpx.Response(409, json={"error": "no", "rejection": rejection})])
    with pytest.raises(GeometryRejectedError) as caught:
        asyncio.run(model.predict(events))
    assert caught.value.rejection == GeometryRejection("f" * 16, "m" * 16)
    assert len(seen) == 1


def test_a_server_failing_past_the_budget_raises_for_the_caller_to_retry(
    events: PulseFrame,
) -> None:
    model, seen = client([httpx.Response(500, json={"error": "bug"})], budget_s=0.5)
    with pytest.raises(ModelServerUnavailableError, match="500"):
        asyncio.run(model.predict(events))
    assert len(seen) >= 2
    assert np.all([request.url.path == "/predict" for request in seen])
