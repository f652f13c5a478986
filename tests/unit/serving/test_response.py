import numpy as np
import pytest

from icecube_stream.model.inference import Prediction
from icecube_stream.serving.response import build_response

pytestmark = pytest.mark.unit


def _prediction(n: int) -> Prediction:
    direction = np.tile([[0.0, 0.6, 0.8]], (n, 1)) * np.arange(1, n + 1)[:, None] / n
    return Prediction(
        azimuth=np.arange(n, dtype=np.float64),
        zenith=np.arange(n, dtype=np.float64) / 10,
        direction=direction,
        kappa=np.full(n, 4.0),
        sigma=np.full(n, 0.5),
    )


def test_columns_follow_request_order() -> None:
    body = build_response("m", "7", np.array([9, 3, 5]), _prediction(3), [])
    assert body["model_name"] == "m" and body["model_version"] == "7"
    assert body["event_id"] == [9, 3, 5]
    assert body["azimuth"] == [0.0, 1.0, 2.0]
    assert body["y"] == pytest.approx([0.2, 0.4, 0.6])
    assert body["angular_uncertainty"] == [0.5, 0.5, 0.5]
    assert set(body) == {
        "model_name", "model_version", "event_id", "azimuth", "zenith", "x", "y", "z",
        "angular_uncertainty", "rejected",
    }  # fmt: skip


def test_a_count_mismatch_is_an_error_not_a_misaligned_answer() -> None:
    with pytest.raises(ValueError, match="2 directions for 3 events"):
        build_response("m", "1", np.array([1, 2, 3]), _prediction(2), [])
