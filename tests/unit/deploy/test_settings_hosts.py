"""Per-service client hosts: what lets one image run as several containers.

In compose and Kubernetes every process binds to 0.0.0.0 (ICECUBE_HOST) but reaches Kafka,
MongoDB, MLflow and the model server by their service names; on one machine nothing changes.
"""

import pytest

from icecube_stream.config import Settings

pytestmark = pytest.mark.unit


def test_one_machine_uses_host_for_every_client_address() -> None:
    s = Settings(host="10.1.2.3")
    assert s.kafka_bootstrap == "10.1.2.3:9092"
    assert s.mongo_url == "mongodb://10.1.2.3:27017/"
    assert s.mlflow_tracking_uri == "http://10.1.2.3:5000"
    assert s.model_server_url == "http://10.1.2.3:3000"
    assert s.prometheus_url == "http://10.1.2.3:9090"


def test_containers_bind_everywhere_and_reach_peers_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "ICECUBE_HOST": "0.0.0.0",
        "ICECUBE_KAFKA_HOST": "kafka",
        "ICECUBE_KAFKA_PORT": "19092",
        "ICECUBE_MONGO_HOST": "mongo",
        "ICECUBE_MLFLOW_HOST": "mlflow",
        "ICECUBE_MODEL_SERVER_HOST": "model-server",
        "ICECUBE_PROMETHEUS_HOST": "prometheus",
    }.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert s.host == "0.0.0.0"
    assert s.kafka_bootstrap == "kafka:19092"
    assert s.mongo_url == "mongodb://mongo:27017/"
    assert s.mlflow_tracking_uri == "http://mlflow:5000"
    assert s.model_server_url == "http://model-server:3000"
    assert s.prometheus_url == "http://prometheus:9090"
