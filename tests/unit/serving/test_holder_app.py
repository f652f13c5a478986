"""The model holder and the mounted app in-process (the real `bentoml serve` is in integration)."""

import threading

import numpy as np
import pytest
from starlette.testclient import TestClient

from icecube_stream.config import Settings
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.model.inference import DirectionModel
from icecube_stream.serving.app import RefusePickleMiddleware, create_app
from icecube_stream.serving.holder import ModelHolder, ModelNotReadyError, Target
from icecube_stream.serving.request import parse_request
from icecube_stream.wire.frame import encode_frame

pytestmark = pytest.mark.unit


class Registry:
    """Stands in for the MLflow alias: which version is champion, and which versions load."""

    def __init__(self, model: DirectionModel) -> None:
        self.version = "1"
        self.broken: set[str] = set()
        self.model = model
        self.loads = 0

    def resolve(self, settings: Settings) -> Target:
        return Target(uri=f"models:/m/{self.version}", name="m", version=self.version)

    def load(self, uri: str, settings: Settings) -> DirectionModel:
        self.loads += 1
        if uri.rsplit("/", 1)[1] in self.broken:
            raise OSError("artifact missing")
        return self.model


@pytest.fixture
def registry(tiny_model) -> Registry:
    return Registry(tiny_model)


@pytest.fixture
def holder(registry) -> ModelHolder:
    return ModelHolder(Settings(), loader=registry.load, resolver=registry.resolve)


def test_reload_loads_only_when_the_alias_moved(holder, registry) -> None:
    assert not holder.ready
    assert holder.reload().outcome == "loaded"
    assert holder.reload().outcome == "unchanged"
    assert registry.loads == 1
    registry.version = "2"
    moved = holder.reload()
    assert (moved.outcome, moved.model_version, moved.previous_version) == ("loaded", "2", "1")
    assert holder.reload(force=True).outcome == "loaded"
    assert registry.loads == 3


def test_a_failed_load_keeps_the_serving_version(holder, registry) -> None:
    holder.reload()
    registry.version = "2"
    registry.broken.add("2")
    outcome = holder.reload()
    assert outcome.outcome == "failed" and "artifact missing" in outcome.detail
    assert holder.current is not None and holder.current.version == "1"


def test_predict_before_any_load_says_why(holder, registry, codec, make_frame) -> None:
    registry.broken.add("1")
    holder.reload()
    request = parse_request(
        encode_frame(make_frame(), codec), None, codec, icecube_geometry(), 1 << 20
    )
    with pytest.raises(ModelNotReadyError, match="artifact missing"):
        holder.predict(request)


def test_background_loader_becomes_ready(holder) -> None:
    holder.start()
    try:
        for _ in range(200):
            if holder.ready:
                break
            threading.Event().wait(0.05)
        assert holder.ready
    finally:
        holder.stop()


TOKEN = "t0ken"
AUTHORISED = {"authorization": f"Bearer {TOKEN}"}


def tokened_app(holder, codec) -> RefusePickleMiddleware:  # type: ignore[no-untyped-def]
    return RefusePickleMiddleware(create_app(holder, Settings(model_server_token=TOKEN), codec))


@pytest.fixture
def client(holder, codec) -> TestClient:
    """A client that sends the server's token, as the worker does."""
    return TestClient(tokened_app(holder, codec), headers=AUTHORISED)


def test_predict_without_the_token_is_refused_before_any_model_code(
    holder, tiny_model, codec, make_frame, monkeypatch
) -> None:
    holder.reload()

    def must_not_run(*_: object, **__: object) -> None:
        raise AssertionError("the model ran for an unauthorised request")

    monkeypatch.setattr(tiny_model, "predict", must_not_run)
    stranger = TestClient(tokened_app(holder, codec))
    body = encode_frame(make_frame(), codec)
    for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": TOKEN}):
        refused = stranger.post("/predict", content=body, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in refused.text


def test_without_a_token_set_predict_is_open(holder, codec, make_frame) -> None:
    """The plain local stack: no token configured, the worker sends none."""
    holder.reload()
    open_server = TestClient(create_app(holder, Settings(), codec))
    assert (
        open_server.post("/predict", content=encode_frame(make_frame(), codec)).status_code == 200
    )


def test_predict_answers_what_the_model_predicts(client, holder, tiny_model, codec, make_frame):
    holder.reload()
    frame = make_frame((5, 9, 3, 30))
    response = client.post(
        "/predict",
        content=encode_frame(frame, codec),
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = tiny_model.predict(
        frame.sensor_id, frame.time, frame.charge, frame.auxiliary, frame.offsets
    )
    assert body["event_id"] == frame.event_id.tolist()
    assert body["model_version"] == "1"
    np.testing.assert_allclose(body["zenith"], expected.zenith, rtol=1e-12)
    np.testing.assert_allclose(body["angular_uncertainty"], expected.sigma, rtol=1e-12)
    np.testing.assert_allclose(body["track_probability"], expected.track_probability, rtol=1e-12)
    assert all(0 < p < 1 for p in body["track_probability"])


def test_not_ready_is_503_with_retry_after(client, codec, make_frame) -> None:
    response = client.post("/predict", content=encode_frame(make_frame(), codec))
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert "not ready" in response.json()["error"]
    assert client.get("/model").json()["ready"] is False


def test_a_bad_event_is_refused_by_name_and_the_rest_served(client, holder, codec, make_frame):
    holder.reload()
    frame = make_frame((4, 3, 5))
    frame.sensor_id[0] = 9999
    answer = client.post("/predict", content=encode_frame(frame, codec))
    assert answer.status_code == 200
    body = answer.json()
    first, *rest = frame.event_id.tolist()
    assert body["event_id"] == rest
    (refused,) = body["rejected"]
    assert (refused["event_id"], refused["reason"]) == (first, "unknown-sensor")


def test_a_non_finite_output_is_refused_by_name_not_answered_500(
    client, holder, tiny_model, codec, make_frame, monkeypatch
):
    holder.reload()
    frame = make_frame((4, 3, 5))
    predict = tiny_model.predict

    def nan_for_the_second(*arrays, **options):  # type: ignore[no-untyped-def]
        prediction = predict(*arrays, **options)
        prediction.direction[1] = np.nan
        return prediction

    monkeypatch.setattr(tiny_model, "predict", nan_for_the_second)
    answer = client.post("/predict", content=encode_frame(frame, codec))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    ids = frame.event_id.tolist()
    assert body["event_id"] == [ids[0], ids[2]]
    assert [(r["event_id"], r["reason"]) for r in body["rejected"]] == [
        (ids[1], "non-finite-output")
    ]
    assert np.isfinite(body["x"]).all()


def test_a_500_shows_no_internal_detail(client, holder, tiny_model, codec, make_frame, monkeypatch):
    holder.reload()

    def broken(*arrays, **options):  # type: ignore[no-untyped-def]
        raise OSError("/secret/path/model.pt: mongodb://user:pw@db/ unreachable")

    monkeypatch.setattr(tiny_model, "predict", broken)
    answer = client.post("/predict", content=encode_frame(make_frame(), codec))
    assert answer.status_code == 500
    assert "/secret" not in answer.text and "mongodb://" not in answer.text


def test_pickle_content_type_is_refused_on_every_path(client) -> None:
    for path in ("/predict", "/reload", "/model", "/readyz", "/anything"):
        response = client.post(
            path, content=b"\x80\x04.", headers={"content-type": "application/vnd.bentoml+pickle"}
        )
        assert response.status_code == 415, path


def test_reload_endpoint_reports_the_outcome_and_hides_the_cause(client, holder, registry) -> None:
    assert client.post("/reload", headers=AUTHORISED).json()["outcome"] == "loaded"
    registry.version = "2"
    registry.broken.add("2")
    failed = client.post("/reload", headers=AUTHORISED)
    assert failed.status_code == 500 and failed.json()["outcome"] == "failed"
    assert "artifact missing" not in failed.text and "models:/" not in failed.text
    assert client.get("/model").json()["model_version"] == "1"


def test_reload_needs_the_token_and_is_off_without_one(holder, codec) -> None:
    stranger = TestClient(tokened_app(holder, codec))
    for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": TOKEN}):
        assert stranger.post("/reload", headers=headers).status_code == 401, headers
    assert holder.current is None  # nothing was loaded by a refused request
    untokened = TestClient(create_app(holder, Settings(), codec))
    off = untokened.post("/reload", headers=AUTHORISED)
    assert off.status_code == 403 and "ICECUBE_MODEL_SERVER_TOKEN" in off.json()["error"]
