"""Integration tests run against the real local stack; the fixture starts what is not running
and stops, at the end, only what it started."""

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
    started_here = [name for name in manager.SERVICES if name not in already]
    if started_here:
        manager.down(settings, started_here, report=lambda _: None)
