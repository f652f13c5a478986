"""Every outage pages: on a private stack, killing Kafka, MongoDB and MLflow makes Prometheus fire
an alert for each, and Alertmanager posts a notification naming the service to a webhook that
this test runs, with a runbook link built from the one setting."""

import json
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from icecube_stream.stack import process
from support import cli, free_port, wait_for

pytestmark = pytest.mark.integration

RUNBOOKS = "https://runbooks.test/operations.md"
KILLED = {"kafka": "KafkaDown", "mongo": "MongoDown", "mlflow": "MlflowDown"}


class Receiver(ThreadingHTTPServer):
    """Alertmanager's webhook: keeps every alert of every notification it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), _Handler)
        self.alerts: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/notify"

    def firing(self) -> dict[str, dict[str, Any]]:
        """alertname -> the latest firing alert of that name."""
        return {a["labels"]["alertname"]: a for a in self.alerts if a["status"] == "firing"}


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.alerts += body["alerts"]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_killing_kafka_mongo_and_mlflow_pages_each_by_name(
    private_env: dict[str, str], receiver: Receiver
) -> None:
    env = {**private_env, "ICECUBE_ALERT_WEBHOOK_URL": receiver.url,
           "ICECUBE_RUNBOOK_BASE_URL": RUNBOOKS}  # fmt: skip
    run_dir = Path(env["ICECUBE_STATE_DIR"]) / "run"
    up = cli(env, "stack", "up")
    try:
        assert up.returncode == 0, up.stderr
        wait_for(lambda: "Watchdog" in receiver.firing(), 120, "the Watchdog's notification")
        assert not set(KILLED.values()) & set(receiver.firing())  # nothing is down yet
        for name in KILLED:
            record = process.PidRecord.load(run_dir / f"{name}.pid")
            assert record is not None and process.is_alive(record)
            os.killpg(record.pid, signal.SIGKILL)
        wait_for(lambda: set(KILLED.values()) <= set(receiver.firing()), 180,
                 f"notifications for {sorted(KILLED.values())}")  # fmt: skip
    finally:
        cli(env, "stack", "down")
    firing = receiver.firing()
    for component, alertname in KILLED.items():
        alert = firing[alertname]
        assert alert["labels"]["component"] == component
        assert alert["annotations"]["runbook_url"] == f"{RUNBOOKS}#{alertname.lower()}"
        assert f"stack up {component}" in alert["annotations"]["description"]
