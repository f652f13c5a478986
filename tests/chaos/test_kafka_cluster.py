"""A 3-node KRaft cluster (`stack up --brokers 3 --netns`), each node in a network namespace
this test makes: one broker SIGKILLed for 30 s, then one cut off from the others and from every
client for 30 s, while events flow. Nothing is lost or written twice to MongoDB. Through the
kill, producers and the worker carry on with the two left (3 replicas, 2 in sync) and the
backlog is back within 30 s; a node cut off slows the pipeline until the controller fences it
and the clients' requests to it time out (docs/local-stack.md)."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icecube_stream.config import Settings
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.stack import manager, network
from icecube_stream.tools.chaos import Chaos, Plan

pytestmark = pytest.mark.chaos

BROKER_FAULTS = Plan(worker_kills=0, kafka_down_s=0, broker_down_s=30.0, partition_s=30.0,
                     mongo_down_s=0, model_down_s=0, model_errors_s=0, second_worker_s=0,
                     poison=False, settle_s=32.0)  # fmt: skip
RATE_HZ = 600.0


def namespaces_refused() -> str:
    """Why this machine will not make a network namespace ('' when it will)."""
    probe = f"icecube-probe-{os.getpid()}"
    made = subprocess.run(
        ["ip", "netns", "add", probe], check=False, capture_output=True, text=True
    )
    if made.returncode == 0:
        subprocess.run(["ip", "netns", "del", probe], check=True)
    return made.stderr.strip()


@pytest.fixture
def cluster(champion: tuple[Settings, Any], tmp_path: Path) -> Iterator[Settings]:
    settings = champion[0].model_copy(
        update={
            "state_dir": tmp_path,
            "kafka_brokers": 3,
            "kafka_netns": True,
            "kafka_netns_subnet": "10.77.9",
            "health_timeout_s": 180.0,
        }
    )
    refused = namespaces_refused()
    if refused:
        pytest.skip(f"this machine makes no network namespaces (`ip netns add`: {refused})")
    try:
        manager.up(settings, ["kafka"], report=lambda _: None)
        yield settings
    finally:
        manager.down(settings, ["kafka"], report=lambda _: None)
        network.remove(settings)


def print_worker_warnings(log: Path, limit: int = 300) -> None:
    """The worker's warnings and errors, less the refused connections to a dead node: pytest
    shows them only when the test fails, as the worker's side of the story."""
    noise = ("Unable connect to node", "NodeNotReadyError", "Connect to ipv4")
    lines = [
        line.rstrip()
        for line in log.read_text(errors="replace").splitlines()
        if ("[WARNING]" in line or "[ERROR]" in line) and not any(n in line for n in noise)
    ]
    print(f"worker log {log}, {len(lines)} warnings and errors, the last {limit}:")
    print("\n".join(lines[-limit:]))


def test_one_broker_of_three_killed_or_cut_off_loses_nothing_and_stops_nothing(
    cluster: Settings, events: EventBatch
) -> None:
    assert [s.health for s in manager.status(cluster, ["kafka"])] == ["healthy"] * 3
    pool = take_events(events, 0, 3000)
    chaos = Chaos(cluster, pool, lambda _: None)
    outcome = chaos.run(BROKER_FAULTS, RATE_HZ)
    print_worker_warnings(manager.select(chaos.worker, ["worker"])[0].log_path)
    table = "\n".join(str(r.as_dict()) for r in outcome.rows)
    killed, cut_off = outcome.rows
    assert killed.fault == "one of 3 Kafka brokers SIGKILL, 30 s", table
    assert cut_off.fault == "one of 3 Kafka brokers cut off, 30 s", table
    assert outcome.emitter_failed_events == 0  # every send acknowledged in the end
    for row in outcome.rows:
        assert row.in_flight.startswith("node ") and "leader of 0" not in row.in_flight, table
        assert row.lost == 0 and row.mongo_duplicates == 0, table
    assert killed.written_per_s > 0.5 * RATE_HZ, table  # the worker carried on meanwhile
    assert killed.recovered_s is not None and killed.recovered_s <= 30.0, table
    # Measured 12-27 s after the heal (README, "Faults"), against a goal of 30 s: a bound that
    # close would fail at random on a slower machine, so only a backlog stuck for good fails.
    assert cut_off.recovered_s is not None and cut_off.recovered_s <= 60.0, table
    print(table)
