"""The model server's answer: one type, encoded by the server and read back by the worker."""

import json
from dataclasses import replace

import numpy as np
import pytest

from icecube_stream.wire.model_api import AnswerMismatchError, GeometryRejection, PredictionBatch
from icecube_stream.wire.reasons import Reason
from icecube_stream.wire.validation import Problem

pytestmark = pytest.mark.unit


def batch(ids: list[int], refused: tuple[Problem, ...] = ()) -> PredictionBatch:
    n = len(ids)
    direction = np.tile([[0.0, 0.6, 0.8]], (n, 1)) * np.arange(1, n + 1)[:, None] / n
    return PredictionBatch(
        "m", "7", np.array(ids, np.int64), np.arange(n, dtype=np.float64),
        np.arange(n, dtype=np.float64) / 10, direction, np.full(n, 0.5), refused,
    )  # fmt: skip


def test_columns_follow_request_order() -> None:
    body = batch([9, 3, 5]).as_json()
    assert body["model_name"] == "m" and body["model_version"] == "7"
    assert body["event_id"] == [9, 3, 5]
    assert body["azimuth"] == [0.0, 1.0, 2.0]
    assert body["y"] == pytest.approx([0.2, 0.4, 0.6])
    assert body["angular_uncertainty"] == [0.5, 0.5, 0.5]
    assert set(body) == {
        "model_name", "model_version", "event_id", "azimuth", "zenith", "x", "y", "z",
        "angular_uncertainty", "track_probability", "rejected",
    }  # fmt: skip


def test_a_count_mismatch_is_an_error_not_a_misaligned_answer() -> None:
    good = batch([1, 2])
    with pytest.raises(ValueError, match="2 directions for 3 events"):
        PredictionBatch("m", "1", np.array([1, 2, 3]), *(np.zeros(3),) * 2, good.direction,
                        np.zeros(3))  # fmt: skip


def test_what_the_server_sends_the_worker_reads_back() -> None:
    refused = (Problem(-1, 4, Reason.EMPTY_EVENT, "event 4 has no pulses"),)
    sent = batch([9, 3, 5], refused)
    read = PredictionBatch.from_json(sent.as_json(), np.array([3, 4, 5, 9]))
    assert read.event_id.tolist() == [9, 3, 5]
    np.testing.assert_allclose(read.direction, sent.direction)
    assert read.refused == refused


@pytest.mark.parametrize("expected", [[9, 3], [9, 3, 5, 6], [9, 3, 3]])
def test_an_answer_for_other_events_is_a_mismatch(expected: list[int]) -> None:
    with pytest.raises(AnswerMismatchError):
        PredictionBatch.from_json(batch([9, 3, 5]).as_json(), np.array(expected))


def test_non_finite_outputs_are_refused_by_name_and_the_rest_served() -> None:
    sent = batch([1, 2, 3])
    sent.direction[1, 0] = np.nan
    sent.angular_uncertainty[2] = np.inf
    kept = sent.finite_only()
    assert kept.event_id.tolist() == [1]
    assert [(p.event_id, p.reason) for p in kept.refused] == [
        (2, Reason.NON_FINITE_OUTPUT), (3, Reason.NON_FINITE_OUTPUT)
    ]  # fmt: skip


def test_a_geometry_rejection_round_trips_and_other_bodies_are_not_one() -> None:
    rejection = GeometryRejection("f" * 16, "m" * 16)
    assert GeometryRejection.from_json({"rejection": rejection.as_json()}) == rejection
    assert GeometryRejection.from_json({"rejection": {"reason": "other"}}) is None
    assert GeometryRejection.from_json("<html>") is None


def test_track_probability_round_trips_with_null_for_unknown() -> None:
    sent = replace(batch([9, 3, 5]), track_probability=np.array([0.25, np.nan, 0.75]))
    body = sent.as_json()
    assert body["track_probability"] == [0.25, None, 0.75]
    text = json.dumps(body, allow_nan=False)  # strict JSON, as the server's encoder writes it
    read = PredictionBatch.from_json(json.loads(text), np.array([3, 5, 9]))
    np.testing.assert_array_equal(read.track_probability, [0.25, np.nan, 0.75])


def test_an_older_servers_answer_without_the_key_reads_as_unknown() -> None:
    body = batch([9, 3]).as_json()
    del body["track_probability"]
    read = PredictionBatch.from_json(body, np.array([3, 9]))
    assert read.track_probability.shape == (2,) and np.isnan(read.track_probability).all()


def test_a_batch_built_without_probabilities_has_nan_ones() -> None:
    assert np.isnan(batch([1, 2]).track_probability).all()
    assert batch([1, 2]).as_json()["track_probability"] == [None, None]
    with pytest.raises(ValueError, match="directions for 2 events"):
        replace(batch([1, 2]), track_probability=np.array([0.5, 0.5, 0.5]))


def test_a_nan_probability_is_not_a_reason_to_refuse() -> None:
    sent = replace(batch([1, 2, 3]), track_probability=np.array([np.nan, 0.9, 0.1]))
    sent.direction[2, 0] = np.nan
    kept = sent.finite_only()
    assert kept.event_id.tolist() == [1, 2]
    np.testing.assert_array_equal(kept.track_probability, [np.nan, 0.9])
    assert [p.event_id for p in kept.refused] == [3]
