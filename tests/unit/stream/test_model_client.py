"""Which refusals of the model server are typed: only those that say what and why."""

import httpx
import pytest

from icecube_stream.stream.model_client import (
    GeometryRejectedError,
    ModelRequestRejectedError,
    rejection_error,
)

pytestmark = pytest.mark.unit


def test_a_geometry_rejection_carries_both_identities() -> None:
    rejection = {
        "reason": "geometry-mismatch",
        "frame_geometry": "f" * 16,
        "model_geometry": "m" * 16,
    }
    body = {"error": "no", "rejection": rejection}
    error = rejection_error(httpx.Response(409, json=body))
    assert isinstance(error, GeometryRejectedError)
    assert (error.frame_geometry, error.model_geometry) == ("f" * 16, "m" * 16)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(400, json={"error": "unknown sensor_id"}),
        httpx.Response(409, json=["not", "an", "object"]),
        httpx.Response(404, text="<html>not found</html>"),
        httpx.Response(409, json={"rejection": {"reason": "something-else"}}),
    ],
)
def test_anything_else_is_an_untyped_refusal(response: httpx.Response) -> None:
    error = rejection_error(response)
    assert type(error) is ModelRequestRejectedError
    assert str(response.status_code) in str(error)
