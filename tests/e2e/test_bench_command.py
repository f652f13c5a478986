"""`icecube-stream bench` runs its phases on a private pipeline and accounts for every event.

No speed is asserted (figures belong to the command's output, not to a timed test); this checks
that the phases of two rounds finish, nothing any round sent is lost or duplicated, every figure
is filled in, and the private pipeline is gone afterwards.
"""

import math
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from icecube_stream.config import Settings
from icecube_stream.events.batch import take_events
from icecube_stream.stack import manager
from icecube_stream.tools.bench import COMPONENTS, Bench

pytestmark = pytest.mark.e2e


def test_bench_accounts_for_every_event(champion: tuple[Settings, Any], events: Any) -> None:
    settings = champion[0]
    bench = Bench(settings, take_events(events, 0, 800), say=lambda _: None, step_s=0.5)
    first, second = [r.as_dict() for r in bench.run(rate_hz=2000.0, rounds=2)]
    for result in (first, second):
        assert (result["lost"], result["duplicated"]) == (0, 0)
        assert result["throughput_eps"] > 0 and result["inference_in_process_eps"] > 0
        assert 0 < result["latency_p50_s"] <= result["latency_p99_s"] < math.inf
        assert 2000 / 16 <= result["sustainable_rate_hz"] <= 2000 * 16
        assert all(v > 0 for v in result["reference"].values())
    assert {"model-server", "worker", "emitter"} <= set(result["cpu_s_per_1000_events"])
    # The private pipeline is gone: no processes, no topics.
    private = bench.settings
    assert all(manager.running(manager.SERVICES[c](private)) is None for c in COMPONENTS)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    topics = admin.list_topics(timeout=10).topics
    assert not [t for t in topics if t.startswith(private.topic_prefix)]
