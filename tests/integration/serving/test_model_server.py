"""The real `bentoml serve` process, started through the stack's ModelServer service.

One server for the module (start-up costs ~15 s on two cores), with a registered-model name of
its own so the live `icecube-direction` champion is never touched. Tests run in file order:
not ready before any champion exists, then served, then overloaded, then reloaded.
"""

import asyncio
import itertools
import os
import pickle
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.events.dataset import DatasetWriter
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.events.simulator import Simulator
from icecube_stream.model.configs import get_config
from icecube_stream.model.data import LabelledSet, labelled, load_events
from icecube_stream.model.features import FeatureConfig
from icecube_stream.model.inference import DirectionModel
from icecube_stream.model.network import NetworkConfig
from icecube_stream.model.registry import log_and_register
from icecube_stream.model.train import fit
from icecube_stream.observe.http import metric_value
from icecube_stream.stack import manager, process
from icecube_stream.stack.model_server import ModelServer
from icecube_stream.stream.model_client import ModelClient, ModelServerUnavailableError
from icecube_stream.wire.codec import AvroCodec
from icecube_stream.wire.frame import PulseFrame, encode_frame
from icecube_stream.wire.model_api import PredictionBatch
from icecube_stream.wire.topics import PULSES, topic_codec
from scratch_registry import ScratchRegistry
from support import free_port, wait_for

pytestmark = pytest.mark.integration

FEATURES = FeatureConfig(max_pulses=24)
TINY = NetworkConfig(d_model=16, n_context=1, ff_dim=32)
TOKEN = "it-" + uuid.uuid4().hex
AUTHORISED = {"authorization": f"Bearer {TOKEN}"}
OCTETS = {"content-type": "application/octet-stream", **AUTHORISED}  # the worker sends both


def _retries_429() -> float:
    """The client's retry counter (this process) for 429 answers."""
    return sum(
        sample.value
        for metric in metrics.MODEL_CALL_RETRIES.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("reason") == "429"
    )


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


@dataclass(frozen=True)
class Event:
    """One whole event of a request, so a test can change one field of one event."""

    event_id: int
    sensor_id: np.ndarray
    time: np.ndarray
    charge: np.ndarray
    auxiliary: np.ndarray


def one_by_one(batch: EventBatch) -> list[Event]:
    offsets = batch.offsets.tolist()
    return [
        Event(int(batch.event_id[k]), batch.sensor_id[lo:hi].astype(np.int16),
              batch.time[lo:hi].astype(np.int64), batch.charge[lo:hi].astype(np.float32),
              batch.auxiliary[lo:hi].astype(np.bool_))
        for k, (lo, hi) in enumerate(itertools.pairwise(offsets))
    ]  # fmt: skip


def request_frame(events: list[Event]) -> PulseFrame:
    n = len(events)
    return PulseFrame(
        source="test", emitted_at_ns=0, event_id=np.array([e.event_id for e in events]),
        part=np.zeros(n, np.int32), n_parts=np.ones(n, np.int32),
        pulse_count=np.array([e.time.size for e in events], np.int32),
        sensor_id=np.concatenate([e.sensor_id for e in events]),
        time=np.concatenate([e.time for e in events]),
        charge=np.concatenate([e.charge for e in events]),
        auxiliary=np.concatenate([e.auxiliary for e in events]),
        geometry_id=icecube_geometry().identity,
    )  # fmt: skip


@dataclass
class Server:
    settings: Settings
    url: str
    data: LabelledSet
    events: list[Event]
    codec: AvroCodec

    def body(self, events: list[Event] | None = None) -> bytes:
        return encode_frame(request_frame(events or self.events), self.codec)

    def register(self, seed: int, promote: bool) -> tuple[str, DirectionModel]:
        """Fit a tiny model for one epoch and register it; the alias moves when promoted."""
        torch.manual_seed(seed)
        config = replace(
            get_config("quick"), network=TINY, features=FEATURES, epochs=1, batch_size=64
        )
        data = self.data
        net, _ = fit(config, data.features, data.targets, data.features, data.targets)
        model = DirectionModel(FEATURES, TINY, data.batch.geometry, net)
        mlflow.set_tracking_uri(self.settings.mlflow_tracking_uri)
        mlflow.set_experiment(self.settings.mlflow_experiment)
        with mlflow.start_run():
            registration = log_and_register(model, data, self.settings, promote=promote)
        return registration.version, model


@pytest.fixture(scope="module")
def server(
    stack: Settings, scratch_registry: ScratchRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The module's model server, with a registered model and experiment of its own that are
    removed from MLflow once it is stopped."""
    root = tmp_path_factory.mktemp("serving")
    geometry = icecube_geometry()
    with DatasetWriter(root / "data", geometry, events_per_file=400) as writer:
        for batch in Simulator(geometry, seed=5).iter_batches(300):
            writer.append(batch)
    data = labelled(load_events(root / "data"), FEATURES)
    batch = data.batch
    events = one_by_one(take_events(batch, 0, 64))
    settings = stack.model_copy(
        update={
            "model_name": scratch_registry.name("it-serving"),
            "mlflow_experiment": scratch_registry.name("it-serving"),
            "model_server_port": free_port(),
            "state_dir": root / "state",
            "model_server_max_concurrency": 2,
            "model_reload_poll_s": 0.0,
            "model_retry_max_s": 20.0,
            "health_timeout_s": 90.0,
            "model_server_max_body_bytes": 4 * 1024 * 1024,
            "model_server_token": SecretStr(TOKEN),  # model_copy does not validate
        }
    )
    service = ModelServer(settings)
    service.prepare()
    env = {**service.env(), "ICECUBE_MODEL_SERVER_TOKEN": TOKEN}  # secrets are never in env()
    record = process.spawn(service.argv(), service.log_path, env)
    record.save(service.pid_path)
    codec = topic_codec(PULSES, settings.topics_dir)
    try:
        yield Server(settings, settings.model_server_url, data, events, codec)
    finally:
        try:
            manager.down(settings, ["model-server"], report=lambda _: None)
        finally:
            scratch_registry.remove(settings.model_name, settings.mlflow_experiment)
        assert not process.is_alive(record), "model server still running after down"
        assert process.tagged(record.run_tag) == [], "model server left children after down"


def test_not_ready_before_a_champion_exists(server: Server) -> None:
    wait_for(lambda: _status(f"{server.url}/livez") == 200, 90, "the server to listen")
    assert _status(f"{server.url}/readyz") == 503
    response = httpx.post(f"{server.url}/predict", content=server.body(), headers=OCTETS)
    assert response.status_code == 503
    assert "not ready" in response.json()["error"]


def test_client_gives_up_after_its_budget_while_not_ready(server: Server) -> None:
    settings = server.settings.model_copy(update={"model_retry_max_s": 1.0})

    async def call() -> None:
        client = ModelClient(settings)
        try:
            await client.predict(request_frame(server.events[:4]))
        finally:
            await client.close()

    started = time.monotonic()
    with pytest.raises(ModelServerUnavailableError, match="503"):
        asyncio.run(call())
    assert time.monotonic() - started < 5


@pytest.fixture(scope="module")
def champion(server: Server) -> tuple[str, DirectionModel]:
    version, model = server.register(seed=1, promote=True)
    httpx.post(f"{server.url}/reload", headers=AUTHORISED, timeout=60)  # skip the 5 s retry
    wait_for(lambda: _status(f"{server.url}/readyz") == 200, 60, "readiness after registering")
    return version, model


def test_predictions_equal_in_process_predictions(
    server: Server, champion: tuple[str, DirectionModel]
) -> None:
    version, model = champion

    async def call() -> PredictionBatch:
        client = ModelClient(server.settings)
        try:
            return await client.predict(request_frame(server.events))
        finally:
            await client.close()

    answer = asyncio.run(call())
    frame = request_frame(server.events)
    expected = model.predict(
        frame.sensor_id, frame.time, frame.charge, frame.auxiliary, frame.offsets
    )
    assert answer.model_name == server.settings.model_name
    assert answer.model_version == version
    np.testing.assert_array_equal(answer.event_id, frame.event_id)
    np.testing.assert_allclose(answer.azimuth, expected.azimuth, atol=1e-9)
    np.testing.assert_allclose(answer.zenith, expected.zenith, atol=1e-9)
    np.testing.assert_allclose(answer.direction, expected.direction, atol=1e-9)
    np.testing.assert_allclose(answer.angular_uncertainty, expected.sigma, atol=1e-9)


def _mutated(server: Server, change: Callable[[Event], Event]) -> bytes:
    return server.body([change(server.events[0]), *server.events[1:3]])


def test_a_bad_request_gets_a_4xx_and_a_bad_event_is_refused_by_name(
    server: Server, champion: object
) -> None:
    good = server.body()
    requests = {
        "not Avro": (b"hello", OCTETS, 400, "not-avro"),
        "wrong schema id": (good[:1] + (42).to_bytes(4, "big") + good[5:], OCTETS, 400, "42"),
        "truncated": (good[: len(good) // 3], OCTETS, 400, ""),
        "JSON": (
            b'{"events": []}',
            {**OCTETS, "content-type": "application/json"},
            415,
            "octet-stream",
        ),
    }
    for name, (body, headers, status, words) in requests.items():
        response = httpx.post(f"{server.url}/predict", content=body, headers=headers)
        assert response.status_code == status, (name, response.text)
        assert words in response.json()["error"], (name, response.text)

    def emptied(e: Event) -> Event:
        return replace(e, sensor_id=e.sensor_id[:0], time=e.time[:0], charge=e.charge[:0],
                       auxiliary=e.auxiliary[:0])  # fmt: skip

    first_charge_nan = np.arange(server.events[0].charge.size) == 0
    events = {
        "non-finite": lambda e: replace(e, charge=np.where(first_charge_nan, np.nan, e.charge)
                                        .astype(np.float32)),
        "negative-charge": lambda e: replace(e, charge=-e.charge),
        "unknown-sensor": lambda e: replace(e, sensor_id=np.full_like(e.sensor_id, 7000)),
        "empty-event": emptied,
        "time-out-of-range": lambda e: replace(e, time=np.full_like(e.time, -(2**63))),
        "event-too-long": lambda e: replace(e, time=e.time + np.arange(e.time.size) * 10**7),
    }  # fmt: skip
    ids = [e.event_id for e in server.events[:3]]
    for reason, change in events.items():
        response = httpx.post(f"{server.url}/predict", content=_mutated(server, change),
                              headers=OCTETS)  # fmt: skip
        assert response.status_code == 200, (reason, response.text)
        body = response.json()
        assert body["event_id"] == ids[1:], reason
        assert [(r["event_id"], r["reason"]) for r in body["rejected"]] == [(ids[0], reason)]
    assert httpx.post(f"{server.url}/predict", content=good, headers=OCTETS).status_code == 200


def test_pickle_bodies_are_never_loaded(server: Server, champion: object, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Exploit:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {marker}",))

    body = pickle.dumps(Exploit())
    paths = ["/predict", "/reload", "/model", "/readyz", "/livez", "/healthz", "/metrics", "/"]
    for path in paths:
        for content_type in ("application/vnd.bentoml+pickle", "application/octet-stream"):
            response = httpx.post(
                f"{server.url}{path}", content=body, headers={"content-type": content_type}
            )
            assert 400 <= response.status_code < 500, (path, content_type, response.status_code)
    assert not marker.exists()
    assert _status(f"{server.url}/readyz") == 200


def test_overload_answers_429_and_the_client_retries_through_it(
    server: Server, champion: object
) -> None:
    many = [replace(e, event_id=e.event_id + k * 10**7) for k in range(4) for e in server.events]
    body = server.body(many)  # 256 events: long enough to overlap

    async def flood() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as http:
            responses = await asyncio.gather(
                *(
                    http.post(f"{server.url}/predict", content=body, headers=OCTETS)
                    for _ in range(12)
                )
            )
        return [r.status_code for r in responses]

    codes = asyncio.run(flood())
    assert set(codes) <= {200, 429}, codes
    assert codes.count(429) > 0 and codes.count(200) >= 2, codes

    retries_before = _retries_429()

    async def clients() -> list[int]:
        client = ModelClient(server.settings)
        try:
            answers = await asyncio.gather(*(client.predict(request_frame(many)) for _ in range(8)))
        finally:
            await client.close()
        return [a.event_id.size for a in answers]

    assert asyncio.run(clients()) == [256] * 8
    retries_after = _retries_429()
    assert retries_after > retries_before


def test_reload_swaps_the_version_without_a_failed_request(
    server: Server, champion: tuple[str, DirectionModel]
) -> None:
    old_version, _ = champion
    new_version, new_model = server.register(seed=2, promote=True)
    assert new_version != old_version
    body = server.body()
    seen: list[tuple[int, str]] = []

    async def traffic_and_reload() -> dict[str, object]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            stop = asyncio.Event()

            async def keep_asking() -> None:
                while not stop.is_set():
                    r = await http.post("/predict", content=body, headers=OCTETS)
                    seen.append((r.status_code, r.json().get("model_version", "")))

            asker = asyncio.create_task(keep_asking())
            await asyncio.sleep(0.3)
            outcome = (await http.post("/reload", headers=AUTHORISED)).json()
            await asyncio.sleep(0.3)
            stop.set()
            await asker
            return dict(outcome)

    outcome = asyncio.run(traffic_and_reload())
    assert outcome["outcome"] == "loaded" and outcome["model_version"] == new_version
    assert all(code == 200 for code, _ in seen), seen
    versions = [v for _, v in seen]
    assert versions[0] == old_version and versions[-1] == new_version
    assert versions == sorted(versions, key=lambda v: v == new_version)  # never back to old
    answer = httpx.post(f"{server.url}/predict", content=body, headers=OCTETS).json()
    frame = request_frame(server.events)
    expected = new_model.predict(
        frame.sensor_id, frame.time, frame.charge, frame.auxiliary, frame.offsets
    )
    np.testing.assert_allclose(answer["zenith"], expected.zenith, atol=1e-9)


def test_metrics_show_the_project_metrics_beside_bentoml(server: Server, champion: object) -> None:
    page = httpx.get(f"{server.url}/metrics").text
    samples = [s for family in text_string_to_metric_families(page) for s in family.samples]

    def value(name: str, **labels: str) -> float:
        return next(s.value for s in samples if s.name == name and s.labels == labels)

    assert value("icecube_model_server_events_total") >= 64
    assert value("icecube_model_server_inference_seconds_count") >= 1
    assert value("icecube_model_server_batch_events_count") >= 1
    assert time.time() - value("icecube_model_server_heartbeat_timestamp_seconds") < 30
    version = httpx.get(f"{server.url}/model").json()["model_version"]
    info = value("icecube_model_server_model_info", model_name=server.settings.model_name,
                 model_version=version)  # fmt: skip
    assert info == 1
    assert any(s.name == "bentoml_service_request_total" for s in samples)
    others = ("icecube_worker_", "icecube_pipeline_", "icecube_emitter_", "icecube_checker_")
    assert sorted({s.name for s in samples if s.name.startswith(others)}) == []


def test_predict_without_the_token_is_refused_and_runs_no_model(
    server: Server, champion: object
) -> None:
    def served() -> float:
        return metric_value(f"{server.url}/metrics", "icecube_model_server_events_total", {})

    before = served()
    for headers in ({}, {"authorization": "Bearer wrong"}):
        headers["content-type"] = "application/octet-stream"
        refused = httpx.post(f"{server.url}/predict", content=server.body(), headers=headers)
        assert refused.status_code == 401, headers
        assert TOKEN not in refused.text
    assert served() == before
    assert httpx.post(f"{server.url}/predict", content=server.body(), headers=OCTETS).is_success
    assert served() > before


def test_reload_needs_the_token(server: Server, champion: object) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        refused = httpx.post(f"{server.url}/reload", headers=headers, timeout=30)
        assert refused.status_code == 401, (headers, refused.text)
        assert TOKEN not in refused.text
    allowed = httpx.post(f"{server.url}/reload", headers=AUTHORISED, timeout=60)
    assert allowed.status_code == 200 and allowed.json()["outcome"] == "unchanged"


def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(
    server: Server, champion: object
) -> None:
    """A chunked body has no length to check up front. The client sends just over the limit and
    then nothing more, without ending the body: only a server that stops reading at the limit
    answers; one that buffers the whole body waits for the rest."""
    limit = server.settings.model_server_max_body_bytes
    port = server.settings.model_server_port
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream"
                     b"\r\nAuthorization: Bearer " + TOKEN.encode() +
                     b"\r\nTransfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        chunk = bytes(64 * 1024)
        for _ in range(limit // len(chunk) + 2):
            sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        answer = b""
        while b"}" not in answer:  # the body is not finished: a buffering server never answers
            answer += sock.recv(4096) or b"}"
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"limit" in answer
    good = httpx.post(f"{server.url}/predict", content=server.body(), headers=OCTETS)
    assert good.status_code == 200


def test_a_killed_supervisor_leaves_no_orphan_that_blocks_a_restart(
    server: Server, champion: object
) -> None:
    """SIGKILL of `bentoml serve` leaves its worker (a session of its own) serving the port;
    `stack up` must reclaim it rather than refuse the port. Last in the module: it replaces
    the module's server."""
    service = ModelServer(server.settings)
    record = process.PidRecord.load(service.pid_path)
    assert record is not None and process.is_alive(record)
    os.kill(record.pid, signal.SIGKILL)
    wait_for(lambda: not process.is_alive(record), 10, "the supervisor to die")
    assert _status(f"{server.url}/livez") == 200  # the orphan still serves: the fault is real
    (status,) = manager.status(server.settings, ["model-server"])
    assert status.health == "orphaned"
    started = time.monotonic()
    manager.up(server.settings, ["model-server"], report=lambda _: None)
    took = time.monotonic() - started
    assert process.tagged(record.run_tag) == []
    (status,) = manager.status(server.settings, ["model-server"])
    assert status.health == "healthy" and status.pid != record.pid
    assert took < 30, f"restart took {took:.0f} s"
