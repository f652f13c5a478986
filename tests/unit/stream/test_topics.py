"""Declared topics fitted to the cluster they are applied to."""

from pathlib import Path

import pytest

from icecube_stream.stream.topics import plan, sized_for
from icecube_stream.wire.topics import PULSES, topic_specs

pytestmark = pytest.mark.unit

TOPICS = Path(__file__).resolve().parents[3] / "topics"


SIZES = [(1, 1, "1"), (2, 2, "2"), (3, 3, "2"), (5, 3, "2")]


@pytest.mark.parametrize(("brokers", "replicas", "in_sync"), SIZES)
def test_replicas_and_min_in_sync_follow_the_cluster_up_to_the_declaration(
    brokers: int, replicas: int, in_sync: str
) -> None:
    declared = topic_specs(TOPICS)[PULSES]
    assert (declared.replication_factor, declared.config["min.insync.replicas"]) == (3, "2")
    sized = sized_for(declared, brokers)
    assert sized.replication_factor == replicas
    assert sized.config["min.insync.replicas"] == in_sync
    assert {k: v for k, v in sized.config.items() if k != "min.insync.replicas"} == {
        k: v for k, v in declared.config.items() if k != "min.insync.replicas"
    }


def test_a_topic_made_for_one_broker_is_not_drift_on_one_broker() -> None:
    sized = sized_for(topic_specs(TOPICS)[PULSES], 1)
    assert plan(sized, sized.partitions, 1, dict(sized.config)) == []
    assert plan(sized, sized.partitions, 3, dict(sized.config)) == [
        "replication factor 3, declared 1"
    ]
