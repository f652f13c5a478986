"""A /metrics endpoint for processes that have no web server of their own (emitter, checker)."""

from __future__ import annotations

import logging

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
