"""Shared fixtures. `stack` is the real local stack (Kafka, MongoDB wire, Prometheus, MLflow):
started when not running, and at the end only what this session started is stopped."""

from collections.abc import Iterator

import pytest

from icecube_stream.config import Settings, get_settings
from icecube_stream.stack import manager


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    settings = get_settings()
    already = {s.name for s in manager.status(settings) if s.pid is not None}
    manager.up(settings, report=lambda _: None)
    yield settings
    started_here = [s.name for s in manager.select(settings) if s.name not in already]
    if started_here:
        manager.down(settings, started_here, report=lambda _: None)
