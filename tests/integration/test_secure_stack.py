"""`stack up --secure` on a private stack: the champion is registered through MLflow's basic auth
and events flow over SASL_SSL under ACLs; Kafka refuses a client without credentials, with a
wrong password, with a certificate of another CA, and a user outside its grants; the model
server refuses a request without its token, MLflow one without the admin's login, MongoDB one
without TLS, without credentials or with a wrong password; no secret shows in any log, in the
worker's or model server's metrics, or in `stack status`."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from icecube_stream.config import Settings
from icecube_stream.connections import confluent_config, mongo_options
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.events.dataset import DatasetWriter
from icecube_stream.stack import credentials
from icecube_stream.stack.pki import Authority
from support import cli, wait_for

pytestmark = pytest.mark.integration

EVENTS = 300


@pytest.fixture
def secured(
    private_env: dict[str, str],
    champion: tuple[Settings, Any],
    events: EventBatch,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[dict[str, str], Settings]]:
    """A private secured stack (Kafka, MongoDB, MLflow, model server, worker) serving the
    session's champion model, registered in its own MLflow; its settings as the stack's owner
    sees them."""
    env = {**private_env, "ICECUBE_MODEL_NAME": "secured-direction",
           "ICECUBE_EMITTER_METRICS_PORT": "0"}  # fmt: skip
    up = cli(env, "stack", "up", "--secure", "kafka", "mongo", "mlflow")
    try:
        assert up.returncode == 0, up.stderr
        applied = cli(env, "topics", "apply")  # as the stack's owner
        assert applied.returncode == 0, applied.stderr
        plain = Settings(state_dir=Path(env["ICECUBE_STATE_DIR"]), stack_secure=True,
                         model_name=env["ICECUBE_MODEL_NAME"], mlflow_experiment="secured",
                         **{name.removeprefix("ICECUBE_").lower(): int(port)
                            for name, port in env.items()
                            if name.startswith("ICECUBE_") and name.endswith("_PORT")})  # fmt: skip
        _register(champion[1], credentials.as_user(plain, credentials.ADMIN), events, tmp_path,
                  monkeypatch)  # fmt: skip
        pipeline = cli(env, "stack", "up", "model-server", "worker")
        assert pipeline.returncode == 0, pipeline.stderr
        yield env, plain
    finally:
        cli(env, "stack", "down")


def _register(
    model: Any, owner: Settings, events: EventBatch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model as the secured MLflow's champion, logged in as its admin (the login is put in
    this process's environment, where MLflow's client reads it: restored afterwards)."""
    import mlflow

    from icecube_stream.connections import mlflow_tracking_uri
    from icecube_stream.model.data import labelled
    from icecube_stream.model.registry import log_and_register

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "")
    mlflow.set_tracking_uri(mlflow_tracking_uri(owner))
    mlflow.set_experiment(owner.mlflow_experiment)
    with mlflow.start_run():
        log_and_register(model, labelled(take_events(events, 0, 500), model.features), owner,
                         promote=True)  # fmt: skip


def kafka_error(config: dict[str, Any]) -> str:
    """What a client with this configuration is told when it asks for the topics."""
    errors: list[str] = []
    admin = AdminClient(config | {"log_level": 0, "error_cb": lambda e: errors.append(str(e))})
    try:
        admin.list_topics(timeout=8)
    except KafkaException as error:
        errors.append(str(error))
    else:
        return ""
    admin.poll(2)  # serves error_cb: the broker's reason, e.g. a failed authentication
    return " | ".join(errors)


def test_the_pipeline_runs_secured_and_refuses_what_it_should(
    secured: tuple[dict[str, str], Settings], events: EventBatch, tmp_path: Path
) -> None:
    env, plain = secured
    batch = take_events(events, 0, EVENTS)
    with DatasetWriter(tmp_path / "data", batch.geometry, events_per_file=10_000) as writer:
        writer.append(batch)
    as_emitter = {**env, **credentials.user_env(plain, "emitter")}
    produced = cli(as_emitter, "produce", "--data", str(tmp_path / "data"))
    assert produced.returncode == 0, produced.stderr
    owner_settings = credentials.as_user(plain, credentials.ADMIN)
    database = MongoClient(plain.mongo_url, **mongo_options(owner_settings))[plain.mongo_database]
    mongo = database[plain.mongo_collection]
    ids = batch.event_id.tolist()
    wait_for(lambda: mongo.count_documents({"_id": {"$in": ids}}) == EVENTS, 180,
             "every event predicted over SASL_SSL")  # fmt: skip

    owner = confluent_config(credentials.as_user(plain, credentials.ADMIN))
    assert kafka_error(owner) == ""
    assert kafka_error({"bootstrap.servers": plain.kafka_bootstrap}), "PLAINTEXT was accepted"
    wrong = owner | {"sasl.password": "not-the-password"}
    assert "Authentication failed" in kafka_error(wrong)
    intruder = Authority(tmp_path / "other-ca").issue("intruder")
    controller = {"bootstrap.servers": f"127.0.0.1:{plain.kafka_controller_port}",
                  "security.protocol": "ssl", "ssl.ca.location": str(credentials.ca_file(plain)),
                  "ssl.certificate.location": str(intruder.cert),
                  "ssl.key.location": str(intruder.key)}  # fmt: skip
    assert kafka_error(controller), "a certificate of another CA reached the controllers"

    emitter = Producer(confluent_config(credentials.as_user(plain, "emitter")))
    outcomes: list[KafkaError | None] = []
    forged = plain.topic("icecube.predictions")
    emitter.produce(forged, b"forged", on_delivery=lambda error, _: outcomes.append(error))
    emitter.flush(30)
    assert outcomes and outcomes[0] is not None
    assert outcomes[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    worker = AdminClient(confluent_config(credentials.as_user(plain, "worker")))
    topic = plain.topic("icecube.pulses")
    with pytest.raises(KafkaException, match=r"TOPIC_AUTHORIZATION_FAILED|authorization"):
        worker.delete_topics([topic])[topic].result(timeout=30)

    refused = httpx.post(f"{plain.model_server_url}/predict", content=b"x", timeout=10)
    assert refused.status_code == 401
    for refused_options, reason in (
        ({"tls": True, "tlsCAFile": str(credentials.ca_file(plain))}, "requires authentication"),
        (mongo_options(owner_settings) | {"password": "wrong"}, "Authentication failed"),
        ({}, "timed out|closed|reset|SSL"),  # no TLS: the server only speaks TLS
    ):
        stranger = MongoClient(plain.mongo_url, serverSelectionTimeoutMS=3000, **refused_options)
        with pytest.raises(PyMongoError, match=reason):
            stranger[plain.mongo_database][plain.mongo_collection].find_one({})
    search = f"{plain.mlflow_tracking_uri}/api/2.0/mlflow/registered-models/search"
    assert httpx.get(search, timeout=10).status_code == 401
    assert httpx.get(search, auth=(credentials.ADMIN, "wrong"), timeout=10).status_code == 401

    status = cli(env, "stack", "status", "--json")
    every_log = "".join(p.read_text(errors="replace") for p in
                        Path(env["ICECUBE_STATE_DIR"], "logs").glob("*.log"))  # fmt: skip
    metrics = (
        httpx.get(plain.worker_metrics_url, timeout=10).text
        + httpx.get(f"{plain.model_server_url}/metrics", timeout=10).text
    )
    for secret in credentials.secrets_dir(plain).iterdir():
        value = secret.read_text()
        assert value not in every_log, f"{secret.name} in a log"
        assert value not in status.stdout + status.stderr, f"{secret.name} in stack status"
        assert value not in metrics, f"{secret.name} in a metric"
    assert json.loads(status.stdout)["services"]["kafka"]["health"] == "healthy"
