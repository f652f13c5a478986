import pytest
from pydantic import ValidationError

from icecube_stream.config import Settings, settings_env

pytestmark = pytest.mark.unit


def test_defaults_point_at_loopback_services() -> None:
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.mongo_url == "mongodb://127.0.0.1:27017/"
    assert settings.prometheus_url == "http://127.0.0.1:9090"
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert (settings.deploy_dir / "prometheus" / "prometheus.yml").is_file()


def test_environment_overrides_use_the_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("ICECUBE_KAFKA_PORT", "19092")
    monkeypatch.setenv("ICECUBE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("KAFKA_PORT", "1")  # without the prefix: ignored
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.state_dir == tmp_path


def test_bad_values_are_rejected_with_the_field_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICECUBE_MONGO_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="mongo_port"):
        Settings()


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().kafka_port = 1  # type: ignore[misc]


def test_settings_env_round_trips_through_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    original = Settings(
        kafka_port=19092, state_dir=tmp_path, topic_prefix="x.", health_timeout_s=7.5
    )
    for name, value in settings_env(original).items():
        monkeypatch.setenv(name, value)
    assert Settings() == original


def test_settings_env_never_writes_a_secret() -> None:
    settings = Settings(kafka_password="pw", model_server_token="token", kafka_username="u")
    env = settings_env(settings)
    assert env["ICECUBE_KAFKA_USERNAME"] == "u"
    assert "ICECUBE_KAFKA_PASSWORD" not in env and "ICECUBE_MODEL_SERVER_TOKEN" not in env
    assert not {"pw", "token"} & set(env.values())
