"""`topics apply`: make the broker's topics match topics/topics.yaml, and say what differed."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not in __all__
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from icecube_stream.config import Settings
from icecube_stream.connections import confluent_config
from icecube_stream.wire.topics import TopicSpec, topic_specs

TIMEOUT_S = 30


@dataclass(frozen=True)
class TopicChange:
    topic: str
    action: str  # created | unchanged | updated | drift (differs and cannot be fixed here)
    detail: str = ""


def plan(spec: TopicSpec, partitions: int, replication: int, config: dict[str, str]) -> list[str]:
    """What differs between a declared topic and the broker's; pure, for tests and dry runs."""
    differences = []
    if partitions != spec.partitions:
        differences.append(f"partitions {partitions} -> {spec.partitions}")
    if replication != spec.replication_factor:
        differences.append(f"replication factor {replication}, declared {spec.replication_factor}")
    for key, value in spec.config.items():
        if config.get(key) != value:
            differences.append(f"{key} {config.get(key)} -> {value}")
    return differences


def sized_for(spec: TopicSpec, brokers: int) -> TopicSpec:
    """The declared topic on a cluster of `brokers`: one replica per broker up to the declared
    factor, and no more replicas required in sync than there are, so a single-broker
    development stack runs the production declaration."""
    replicas = min(spec.replication_factor, brokers)
    config = dict(spec.config)
    if "min.insync.replicas" in config:
        config["min.insync.replicas"] = str(min(int(config["min.insync.replicas"]), replicas))
    return replace(spec, replication_factor=replicas, config=config)


def apply(settings: Settings, dry_run: bool = False) -> list[TopicChange]:
    admin = AdminClient(confluent_config(settings))
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    existing, brokers = metadata.topics, len(metadata.brokers)
    changes = []
    for declared in topic_specs(settings.topics_dir).values():
        spec = sized_for(declared, brokers)
        name = settings.topic(spec.name)
        if name not in existing:
            if not dry_run:
                _create(admin, name, spec)
            changes.append(TopicChange(name, "created" if not dry_run else "missing"))
            continue
        changes.append(_reconcile(admin, name, spec, existing[name], dry_run))
    _wait_visible(admin, [c.topic for c in changes if c.action == "created"])
    return changes


def _create(admin: AdminClient, name: str, spec: TopicSpec) -> None:
    topic = NewTopic(name, spec.partitions, spec.replication_factor, config=spec.config)
    admin.create_topics([topic])[name].result(timeout=TIMEOUT_S)


def _wait_visible(admin: AdminClient, names: list[str]) -> None:
    """Created topics reach the broker's metadata a moment after the controller confirms them;
    wait, so the next command (or `apply` again) sees them."""
    deadline = time.monotonic() + TIMEOUT_S
    while names and time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=TIMEOUT_S).topics
        if all(name in metadata and metadata[name].partitions for name in names):
            return
        time.sleep(0.1)


def _reconcile(
    admin: AdminClient, name: str, spec: TopicSpec, metadata: object, dry_run: bool
) -> TopicChange:
    partitions = getattr(metadata, "partitions", {})
    replication = len(next(iter(partitions.values())).replicas) if partitions else 0
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    described = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    config = {key: entry.value for key, entry in described.items()}
    differences = plan(spec, len(partitions), replication, config)
    if not differences:
        return TopicChange(name, "unchanged")
    fixable = not (len(partitions) > spec.partitions or replication != spec.replication_factor)
    if dry_run or not fixable:
        return TopicChange(name, "drift", "; ".join(differences))
    if len(partitions) < spec.partitions:
        admin.create_partitions([NewPartitions(name, spec.partitions)])[name].result(TIMEOUT_S)
    entries = [
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
        for key, value in spec.config.items()
        if config.get(key) != value
    ]
    if entries:
        update = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
        try:
            admin.incremental_alter_configs([update])[update].result(timeout=TIMEOUT_S)
        except KafkaException as error:
            return TopicChange(name, "drift", f"{'; '.join(differences)} (not applied: {error})")
    return TopicChange(name, "updated", "; ".join(differences))


class TopicMissingError(RuntimeError):
    """Kafka is unreachable or a topic is missing; the message says which command fixes it."""


def require_topics(settings: Settings, *names: str) -> None:
    """Fail fast, before a producer silently retries for minutes against a missing topic."""
    admin = AdminClient(confluent_config(settings) | {"log_level": 0})
    try:
        existing = admin.list_topics(timeout=10).topics
    except KafkaException:
        raise TopicMissingError(
            f"Kafka at {settings.kafka_bootstrap} does not answer; start it with "
            "`icecube-stream stack up`"
        ) from None
    missing = [settings.topic(name) for name in names if settings.topic(name) not in existing]
    if missing:
        raise TopicMissingError(
            f"topic(s) {', '.join(missing)} do not exist; create them with "
            "`icecube-stream topics apply`"
        )
