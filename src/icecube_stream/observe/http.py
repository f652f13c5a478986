"""/metrics endpoints: serving one for processes without a web server (emitter, checker), and
reading a value from another process's."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import httpx
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)


def serve_metrics(host: str, port: int, registry: CollectorRegistry) -> bool:
    """Serve one component's registry on host:port in a daemon thread; False when the port is
    taken.

    A busy port must not stop the emitter: a second emitter beside the first is legitimate (the
    first one keeps the port and Prometheus scrapes it), and losing metrics beats losing data.
    """
    if port <= 0:
        return False
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        log.warning("metrics endpoint %s:%d not started: %s", host, port, error)
        return False
    return True


def metric_value(
    url: str, name: str, labels: Mapping[str, str] | None = None, timeout_s: float = 5.0
) -> float:
    """The value of the sample `name` with exactly these labels (none by default) on a /metrics
    page; 0 before it exists."""
    page = httpx.get(url, timeout=timeout_s).text
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == name and sample.labels == dict(labels or {}):
                return sample.value
    return 0.0
