"""/metrics endpoints: serving one for processes without a web server (emitter, checker), and
reading a value from another process's."""

from __future__ import annotations

import logging

import httpx
from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def serve_metrics(host: str, port: int) -> bool:
    """Serve the default registry on host:port in a daemon thread; False when the port is taken.

    A busy port must not stop the emitter: a second emitter beside the first is legitimate (the
    first one keeps the port and Prometheus scrapes it), and losing metrics beats losing data.
    """
    if port <= 0:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as error:
        log.warning("metrics endpoint %s:%d not started: %s", host, port, error)
        return False
    return True


def metric_value(url: str, name: str, timeout_s: float = 5.0) -> float:
    """The value of an unlabelled sample `name` on a /metrics page (0 before it exists)."""
    prefix = name + " "
    for line in httpx.get(url, timeout=timeout_s).text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0
