"""Apache Kafka in KRaft mode, from the broker jars on Maven Central, run with `java`: one node,
or a cluster of `kafka_brokers` nodes on this machine, each a broker and a controller.

The cluster's size is fixed when its storage is formatted (the controllers' quorum is part of
it), so it is recorded beside node 1's data and later commands follow the record.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from icecube_stream.config import Settings, get_settings
from icecube_stream.connections import confluent_config
from icecube_stream.stack import credentials, network, pki
from icecube_stream.stack.service import Service, StackError, run_logged

LOG4J_VERSION = "2.25.3"
MANIFEST = "SHA256SUMS"
CLUSTER_RECORD = "cluster.json"


def render_pom(kafka_version: str) -> str:
    template = resources.files("icecube_stream.stack").joinpath("resources/kafka-pom.xml")
    return template.read_text().format(kafka_version=kafka_version, log4j_version=LOG4J_VERSION)


@dataclass(frozen=True)
class BrokerTls:
    """What a secured node needs: its key and certificate, the CA, the admin's password."""

    keystore: Path
    truststore: Path
    admin_password: str


def server_properties(
    settings: Settings, node: int, data_dir: Path, tls: BrokerTls | None = None
) -> str:
    """Broker + controller in one process; topics are created explicitly, never on first use.
    Internal topics get a replica on up to 3 nodes and need 2 of them in sync where there are.
    Secured (`tls`): clients and brokers on SASL_SSL with SCRAM users, controllers on TLS with
    certificates of the stack's CA required, and nothing allowed without an ACL."""
    host, port, controller = settings.kafka_node(node)
    addresses = {n: settings.kafka_node(n) for n in range(1, settings.kafka_brokers + 1)}
    voters = ",".join(f"{n}@{address}:{ctl}" for n, (address, _, ctl) in addresses.items())
    replicas, in_sync = str(min(3, settings.kafka_brokers)), str(min(2, settings.kafka_brokers))
    properties = {
        "process.roles": "broker,controller",
        "node.id": str(node),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "auto.create.topics.enable": "false",
        "num.partitions": "6",
        "default.replication.factor": replicas,
        "min.insync.replicas": in_sync,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": in_sync,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": in_sync,
        "group.initial.rebalance.delay.ms": "0",
    }
    if tls is not None:
        properties |= _secured(host, port, controller, tls)
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def _secured(host: str, port: int, controller: int, tls: BrokerTls) -> dict[str, str]:
    login = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{credentials.ADMIN}" password="{tls.admin_password}";'
    )
    return {
        "listeners": f"SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller}",
        "advertised.listeners": f"SASL_SSL://{host}:{port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": login,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(tls.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls.truststore),
        "listener.name.controller.ssl.client.auth": "required",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{credentials.ADMIN};User:CN={credentials.BROKER_CERT}",
    }


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding. Never one that
    starts with "-" (1 in 64): `kafka-storage format -t` would read it as an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def current_settings() -> Settings:
    """This process's settings, with the layout the local Kafka cluster was made with, so every
    command finds all of its nodes (`stack up --brokers 3 --netns` and then plain commands).
    On a secured stack a command without Kafka security of its own acts as the stack's owner
    (`admin`), whose password only this machine user can read."""
    settings = cluster_settings(get_settings())
    if settings.stack_secure and "kafka_security_protocol" not in settings.model_fields_set:
        return credentials.as_user(settings, credentials.ADMIN)
    return settings


def cluster_settings(settings: Settings) -> Settings:
    """The settings with the recorded cluster layout (size, namespaces). Asking for another
    layout than the stored cluster has is an error: its controllers' quorum cannot change."""
    recorded = _recorded_layout(settings)
    if recorded is None:
        return settings
    asked = {key: getattr(settings, key) for key in recorded if key in settings.model_fields_set}
    if any(asked[key] != recorded[key] for key in asked):
        raise StackError(
            f"the Kafka cluster under {settings.state_dir / 'kafka'} has {_describe(recorded)}, "
            f"not {_describe({**recorded, **asked})}; ask for what it has, or `stack down` and "
            "remove that folder and the kafka-N ones beside it to start an empty cluster"
        )
    return settings.model_copy(update=recorded)


def _describe(layout: dict[str, Any]) -> str:
    where = " in network namespaces" if layout["kafka_netns"] else ""
    secured = ", secured" if layout.get("stack_secure") else ""
    return f"{layout['kafka_brokers']} node(s){where}{secured}"


def _recorded_layout(settings: Settings) -> dict[str, Any] | None:
    node_one = settings.state_dir / "kafka"
    try:
        record = json.loads((node_one / CLUSTER_RECORD).read_text())
        return {"kafka_brokers": int(record["brokers"]), "kafka_netns": bool(record["netns"]),
                "stack_secure": bool(record.get("secure", False))}  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        # Formatted before clusters were recorded: a single node.
        if (node_one / "data" / "meta.properties").exists():
            return {"kafka_brokers": 1, "kafka_netns": False, "stack_secure": False}
        return None


def _cluster_id(settings: Settings) -> str:
    """The id every node is formatted with, made (and the layout recorded) by the first one."""
    path = settings.state_dir / "kafka" / CLUSTER_RECORD
    try:
        return str(json.loads(path.read_text())["cluster_id"])
    except (OSError, ValueError, KeyError, TypeError):
        cluster_id = new_cluster_id()
        record = {"cluster_id": cluster_id, "brokers": settings.kafka_brokers,
                  "netns": settings.kafka_netns, "secure": settings.stack_secure}  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        return cluster_id


def write_manifest(libs_dir: Path) -> None:
    lines = [f"{_sha256(jar)}  {jar.name}" for jar in sorted(libs_dir.glob("*.jar"))]
    (libs_dir / MANIFEST).write_text("\n".join(lines) + "\n")


def manifest_ok(libs_dir: Path) -> bool:
    """True when every jar the manifest lists is present with its recorded checksum."""
    try:
        lines = (libs_dir / MANIFEST).read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        digest, name = line.split("  ", 1)
        jar = libs_dir / name
        if not jar.is_file() or _sha256(jar) != digest:
            return False
    return bool(lines)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def nodes(settings: Settings) -> list[Kafka]:
    """One service per node of the (recorded) cluster."""
    settings = cluster_settings(settings)
    return [Kafka(settings, node) for node in range(1, settings.kafka_brokers + 1)]


class Kafka(Service):
    name = "kafka"

    def __init__(self, settings: Settings, node: int = 1) -> None:
        super().__init__(settings)
        self.node = node
        if node > 1:
            self.name = f"kafka-{node}"

    @property
    def host(self) -> str:
        return self.settings.kafka_node(self.node)[0]

    @property
    def ports(self) -> list[int]:
        return list(self.settings.kafka_node(self.node)[1:])

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.ports[0]}"

    def listening(self) -> list[int]:
        # Without its namespace the node's address routes off this machine, where a proxy
        # may accept any connection: nothing of ours can listen there yet.
        if self.settings.kafka_netns and not network.exists(self.settings, self.node):
            return []
        return super().listening()

    @property
    def libs_dir(self) -> Path:
        return self.settings.cache_dir / "kafka" / self.settings.kafka_version / "libs"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "server.properties"

    @property
    def log4j_config(self) -> Path:
        return self.state_dir / "log4j2.xml"

    def install(self) -> None:
        if manifest_ok(self.libs_dir):
            return
        if not shutil.which("mvn") or not shutil.which("java"):
            raise StackError("kafka needs `java` (17+) and `mvn` on PATH to fetch the broker jars")
        build = self.libs_dir.parent
        shutil.rmtree(self.libs_dir, ignore_errors=True)
        build.mkdir(parents=True, exist_ok=True)
        (build / "pom.xml").write_text(render_pom(self.settings.kafka_version))
        run_logged(
            [
                "mvn", "-B", "-q", "dependency:copy-dependencies",
                f"-DoutputDirectory={self.libs_dir}", "-DincludeScope=runtime",
            ],
            build / "mvn.log",
            f"resolving Kafka {self.settings.kafka_version} jars with Maven",
            cwd=build,
        )  # fmt: skip
        write_manifest(self.libs_dir)

    def prepare(self) -> None:
        if self.settings.kafka_netns:
            network.ensure(self.settings)
        data_dir = self.state_dir / "data"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            server_properties(self.settings, self.node, data_dir, self._tls())
        )
        self.config_path.chmod(0o600)  # secured, it holds the admin's password
        log4j = resources.files("icecube_stream.stack").joinpath("resources/log4j2.xml")
        self.log4j_config.write_text(log4j.read_text())
        if (data_dir / "meta.properties").exists():
            return
        run_logged(
            [*self._java(), "kafka.tools.StorageTool", "format",
             "-t", _cluster_id(self.settings), "-c", str(self.config_path),
             *self._scram_users()],
            self.state_dir / "format.log",
            "formatting Kafka storage",
        )  # fmt: skip

    def _tls(self) -> BrokerTls | None:
        if not self.settings.stack_secure:
            return None
        hosts = {self.settings.kafka_node(n)[0] for n in range(1, self.settings.kafka_brokers + 1)}
        issued = pki.Authority(self.settings.state_dir / "pki").issue(
            credentials.BROKER_CERT, sorted(hosts | {"localhost"})
        )
        return BrokerTls(
            keystore=issued.bundle,
            truststore=credentials.ca_file(self.settings),
            admin_password=credentials.secret(self.settings, f"kafka-{credentials.ADMIN}"),
        )

    def _scram_users(self) -> list[str]:
        """`format --add-scram` arguments creating the SCRAM users of a secured cluster. The
        tool takes them only as arguments: they show in `ps` for the seconds formatting takes,
        once, on the stack owner's machine (docs/security.md)."""
        if not self.settings.stack_secure:
            return []
        arguments = []
        for user in credentials.USERS:
            password = credentials.secret(self.settings, f"kafka-{user}")
            arguments += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        return arguments

    def _java(self) -> list[str]:
        heap = self.settings.kafka_heap
        return [
            "java", f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.log4j_config}",
            "-cp", f"{self.libs_dir}/*",
        ]  # fmt: skip

    def argv(self) -> list[str]:
        inside = ["ip", "netns", "exec", network.namespace(self.settings, self.node)]
        return [*(inside if self.settings.kafka_netns else []), *self._java(), "kafka.Kafka",
                str(self.config_path)]  # fmt: skip

    def healthy(self) -> bool:
        """A metadata request answered by this node, which lists itself as a live broker."""
        node = {"bootstrap.servers": self.endpoint, "log_level": 0}
        admin = AdminClient(confluent_config(self._owner()) | node)
        try:
            return self.node in admin.list_topics(timeout=2).brokers
        except Exception:
            return False

    def configure(self) -> None:
        """Secured: the ACLs of stack/credentials.py (creating one that exists is a no-op)."""
        if not self.settings.stack_secure:
            return
        admin = AdminClient(confluent_config(self._owner()) | {"log_level": 0})
        for binding, future in admin.create_acls(credentials.bindings(self.settings)).items():
            try:
                future.result(timeout=30)
            except Exception as error:
                raise StackError(f"kafka: could not create the ACL {binding}: {error}") from None

    def _owner(self) -> Settings:
        """The settings the stack itself talks to Kafka with: the admin user when secured."""
        if self.settings.stack_secure:
            return credentials.as_user(self.settings, credentials.ADMIN)
        return self.settings
