"""Prometheus discovers a target from a file_sd document, scrapes it and answers a query."""

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from icecube_stream.config import Settings
from icecube_stream.stack.prometheus import Prometheus, file_sd

pytestmark = pytest.mark.integration


def query(settings: Settings, promql: str) -> list[dict[str, object]]:
    response = httpx.get(f"{settings.prometheus_url}/api/v1/query", params={"query": promql})
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success"
    return list(body["data"]["result"])


@pytest.fixture
def exporter(stack: Settings) -> Iterator[tuple[str, float]]:
    """A real /metrics endpoint registered with the running Prometheus under a unique component."""
    registry = CollectorRegistry()
    value = float(uuid.uuid4().int % 1000)
    Gauge("icecube_test_probe_value", "integration probe", registry=registry).set(value)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    component = f"test-{uuid.uuid4().hex[:8]}"
    target: Path = Prometheus(stack).config_dir / "targets" / f"{component}.json"
    target.write_text(file_sd(component, f"127.0.0.1:{server.server_port}"))
    yield component, value
    target.unlink()
    server.shutdown()
    thread.join()


def test_prometheus_scrapes_a_discovered_target(
    stack: Settings, exporter: tuple[str, float]
) -> None:
    component, value = exporter
    deadline = time.monotonic() + 60
    result: list[dict[str, object]] = []
    while not result:
        assert time.monotonic() < deadline, "target never scraped"
        time.sleep(1)
        result = query(stack, f'icecube_test_probe_value{{component="{component}"}}')
    sample = result[0]["value"]
    assert isinstance(sample, list)
    assert float(sample[1]) == value
    assert query(stack, f'up{{component="{component}"}}')[0]["value"][1] == "1"  # type: ignore[index]


def test_prometheus_scrapes_itself(stack: Settings) -> None:
    deadline = time.monotonic() + 30
    while not (result := query(stack, 'up{component="prometheus"}')):
        assert time.monotonic() < deadline
        time.sleep(1)
    assert result[0]["value"][1] == "1"  # type: ignore[index]
