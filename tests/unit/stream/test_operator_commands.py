"""The operator's read commands against services that are not there: one clear line and exit 1,
no traceback and no librdkafka log flood."""

import os
import subprocess
import sys

import pytest

from support import free_port

pytestmark = pytest.mark.unit


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "icecube_stream", *args],
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [("predictions", "tail"), ("dlq", "show"), ("dlq", "replay", "--dry-run")],
    ids=["predictions tail", "dlq show", "dlq replay"],
)
def test_a_broker_that_does_not_answer_is_one_line(args: tuple[str, ...]) -> None:
    port = str(free_port())
    result = cli(*args, ICECUBE_KAFKA_PORT=port)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: Kafka at 127.0.0.1:{port} does not answer; is it up? `icecube-stream stack status`"
    ]


def test_a_database_that_does_not_answer_is_one_line() -> None:
    port = str(free_port())
    result = cli("predictions", "get", "42", ICECUBE_MONGO_PORT=port)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: MongoDB at mongodb://127.0.0.1:{port}/ does not answer "
        "(ServerSelectionTimeoutError); is it up? `icecube-stream stack status`"
    ]


@pytest.mark.parametrize("command", [("predictions", "tail"), ("dlq", "show")])
def test_a_negative_count_is_refused(command: tuple[str, ...]) -> None:
    result = cli(*command, "-n", "-1")
    assert result.returncode == 2
    assert "greater than or equal to 0" in result.stderr
