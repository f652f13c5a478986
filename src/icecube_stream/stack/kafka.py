"""Apache Kafka, single-node KRaft, from the broker jars on Maven Central, run with `java`."""

from __future__ import annotations

import base64
import hashlib
import shutil
import uuid
from importlib import resources
from pathlib import Path

from confluent_kafka.admin import AdminClient

from icecube_stream.config import Settings
from icecube_stream.stack.service import Service, StackError, run_logged

LOG4J_VERSION = "2.25.3"
MANIFEST = "SHA256SUMS"


def render_pom(kafka_version: str) -> str:
    template = resources.files("icecube_stream.stack").joinpath("resources/kafka-pom.xml")
    return template.read_text().format(kafka_version=kafka_version, log4j_version=LOG4J_VERSION)


def server_properties(settings: Settings, data_dir: Path) -> str:
    """Broker + controller in one process; topics are created explicitly, never on first use."""
    host, port, controller = settings.host, settings.kafka_port, settings.kafka_controller_port
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{controller}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "auto.create.topics.enable": "false",
        "num.partitions": "6",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


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


class Kafka(Service):
    name = "kafka"

    @property
    def ports(self) -> list[int]:
        return [self.settings.kafka_port, self.settings.kafka_controller_port]

    @property
    def endpoint(self) -> str:
        return self.settings.kafka_bootstrap

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
        data_dir = self.state_dir / "data"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(server_properties(self.settings, data_dir))
        log4j = resources.files("icecube_stream.stack").joinpath("resources/log4j2.xml")
        self.log4j_config.write_text(log4j.read_text())
        if (data_dir / "meta.properties").exists():
            return
        run_logged(
            [*self._java(), "kafka.tools.StorageTool", "format",
             "-t", new_cluster_id(), "-c", str(self.config_path)],
            self.state_dir / "format.log",
            "formatting Kafka storage",
        )  # fmt: skip

    def _java(self) -> list[str]:
        heap = self.settings.kafka_heap
        return [
            "java", f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.log4j_config}",
            "-cp", f"{self.libs_dir}/*",
        ]  # fmt: skip

    def argv(self) -> list[str]:
        return [*self._java(), "kafka.Kafka", str(self.config_path)]

    def healthy(self) -> bool:
        """A metadata request answered by the broker."""
        admin = AdminClient({"bootstrap.servers": self.endpoint, "log_level": 0})
        try:
            return bool(admin.list_topics(timeout=2).brokers)
        except Exception:
            return False
