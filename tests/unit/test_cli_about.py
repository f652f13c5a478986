"""`--version` and `config`: what an operator asks first, and where a secret must never leak."""

import json
import os
import re
from importlib import metadata
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from icecube_stream.cli import app
from icecube_stream.cli.about import is_secret
from icecube_stream.config import Settings

pytestmark = pytest.mark.unit

SECRET = "s3cret-T0ken-do-not-print"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Only what a test sets, and a state folder without a Kafka cluster record."""
    for name in list(os.environ):
        if name.upper().startswith("ICECUBE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ICECUBE_STATE_DIR", str(tmp_path))
    return monkeypatch


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_version_prints_the_installed_version() -> None:
    code, stdout, _ = invoke("--version")
    assert code == 0
    assert stdout == f"icecube-stream {metadata.version('icecube-stream')}\n"
    assert re.fullmatch(r"icecube-stream \d+\.\d+\.\d+\S*\n", stdout)


def test_config_json_reports_every_field_with_its_variable_and_source(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("ICECUBE_KAFKA_PORT", "19092")
    environment.setenv("ICECUBE_MODEL_SERVER_TOKEN", SECRET)
    code, stdout, stderr = invoke("config", "--json")
    assert code == 0, stderr
    assert SECRET not in stdout + stderr
    report = json.loads(stdout)  # exactly one JSON object
    assert list(report) == list(Settings.model_fields)
    assert report["kafka_port"] == {
        "variable": "ICECUBE_KAFKA_PORT",
        "value": 19092,
        "source": "environment",
    }
    assert report["model_server_token"] == {
        "variable": "ICECUBE_MODEL_SERVER_TOKEN",
        "value": "***",
        "source": "environment",
    }
    assert report["mongo_port"] == {
        "variable": "ICECUBE_MONGO_PORT",
        "value": 27017,
        "source": "default",
    }


def table_rows(table: str) -> dict[str, list[str]]:
    """variable -> [value, source], from the rows of the rich table."""
    rows = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0].startswith("ICECUBE_"):
            rows[cells[0]] = cells[1:]
    return rows


def test_config_table_masks_the_secret(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("ICECUBE_KAFKA_PORT", "19092")
    environment.setenv("ICECUBE_MODEL_SERVER_TOKEN", SECRET)
    code, stdout, stderr = invoke("config")
    assert code == 0, stderr
    assert SECRET not in stdout + stderr
    rows = table_rows(stdout)
    assert len(rows) == len(Settings.model_fields)
    assert rows["ICECUBE_KAFKA_PORT"] == ["19092", "environment"]
    assert rows["ICECUBE_MODEL_SERVER_TOKEN"] == ["***", "environment"]
    assert rows["ICECUBE_HOST"] == ["127.0.0.1", "default"]


def test_an_unset_secret_is_shown_unset_not_masked(environment: pytest.MonkeyPatch) -> None:
    code, stdout, _ = invoke("config", "--json")
    assert code == 0
    token = json.loads(stdout)["model_server_token"]
    assert token == {"variable": "ICECUBE_MODEL_SERVER_TOKEN", "value": None, "source": "default"}


def test_secrets_are_known_by_type_and_by_name() -> None:
    assert is_secret("model_server_token", SecretStr("x"))
    assert is_secret("anything", SecretStr("x"))
    assert is_secret("mongo_password", "plain")
    assert is_secret("oauth_client_secret", "plain")
    assert not is_secret("kafka_port", 9092)


def test_config_shows_the_recorded_kafka_cluster_over_the_default(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every other command uses the layout the local cluster was formatted with."""
    (tmp_path / "kafka").mkdir()
    record = {"cluster_id": "x", "brokers": 3, "netns": False}
    (tmp_path / "kafka" / "cluster.json").write_text(json.dumps(record))
    code, stdout, _ = invoke("config", "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["kafka_brokers"]["value"] == 3
    assert report["kafka_brokers"]["source"] == "kafka cluster"
    assert report["kafka_netns"]["source"] == "default"  # recorded, but the same as the default


def test_a_bad_variable_is_named_without_echoing_values(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("ICECUBE_MONGO_PORT", "not-a-port")
    environment.setenv("ICECUBE_MODEL_SERVER_TOKEN", SECRET)
    code, stdout, stderr = invoke("config")
    assert code == 1
    assert "ICECUBE_MONGO_PORT" in stderr
    assert "not-a-port" not in stderr
    assert SECRET not in stdout + stderr
