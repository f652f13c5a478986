"""The stack's pure parts: rendered configuration and command lines."""

import base64
import json
from pathlib import Path

import pytest

from icecube_stream.config import Settings
from icecube_stream.stack import kafka, mongo, prometheus
from icecube_stream.stack.mlflow_server import MlflowServer
from icecube_stream.stack.service import StackError

pytestmark = pytest.mark.unit


def parse_properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_kafka_properties_single_node_kraft_without_auto_creation(tmp_path: Path) -> None:
    settings = Settings(kafka_port=19092, kafka_controller_port=19093)
    props = parse_properties(kafka.server_properties(settings, 1, tmp_path / "data"))
    assert props["process.roles"] == "broker,controller"
    assert props["auto.create.topics.enable"] == "false"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"


def test_kafka_properties_of_a_three_node_cluster(tmp_path: Path) -> None:
    settings = Settings(kafka_brokers=3)
    props = parse_properties(kafka.server_properties(settings, 2, tmp_path / "data"))
    assert props["node.id"] == "2"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    voters = "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    assert props["controller.quorum.voters"] == voters
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    assert settings.kafka_bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"


def test_nodes_in_network_namespaces_share_ports_and_differ_in_address(tmp_path: Path) -> None:
    settings = Settings(kafka_brokers=3, kafka_netns=True, state_dir=tmp_path)
    props = parse_properties(kafka.server_properties(settings, 3, tmp_path / "data"))
    assert props["listeners"] == "PLAINTEXT://10.77.0.3:9092,CONTROLLER://10.77.0.3:9093"
    voters = "1@10.77.0.1:9093,2@10.77.0.2:9093,3@10.77.0.3:9093"
    assert props["controller.quorum.voters"] == voters
    assert settings.kafka_bootstrap == "10.77.0.1:9092,10.77.0.2:9092,10.77.0.3:9092"
    node = kafka.Kafka(settings, 2)
    assert node.argv()[:4] == ["ip", "netns", "exec", "icecube-0-kafka-2"]
    assert (node.host, node.ports, node.name) == ("10.77.0.2", [9092, 9093], "kafka-2")


def test_the_recorded_cluster_size_wins_and_another_one_asked_for_is_refused(
    tmp_path: Path,
) -> None:
    three = Settings(state_dir=tmp_path, kafka_brokers=3)
    assert [node.name for node in kafka.nodes(three)] == ["kafka", "kafka-2", "kafka-3"]
    kafka._cluster_id(three)  # what formatting node 1 records
    plain = Settings(state_dir=tmp_path)
    assert kafka.cluster_settings(plain).kafka_brokers == 3
    assert [node.ports for node in kafka.nodes(plain)][2] == [9096, 9097]
    with pytest.raises(StackError, match="has 3 node"):
        kafka.cluster_settings(Settings(state_dir=tmp_path, kafka_brokers=1))
    with pytest.raises(StackError, match=r"not 3 node\(s\) in network namespaces"):
        kafka.cluster_settings(Settings(state_dir=tmp_path, kafka_netns=True))


def test_a_single_node_formatted_before_clusters_were_recorded_counts_as_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("node.id=1\n")
    with pytest.raises(StackError, match="has 1 node"):
        kafka.cluster_settings(Settings(state_dir=tmp_path, kafka_brokers=3))


def test_kafka_pom_pins_the_configured_version() -> None:
    pom = kafka.render_pom("4.9.9")
    assert "<artifactId>kafka_2.13</artifactId>\n      <version>4.9.9</version>" in pom
    assert f"<version>{kafka.LOG4J_VERSION}</version>" in pom
    assert "{" not in pom


def test_cluster_id_is_16_bytes_url_safe_base64() -> None:
    ids = {kafka.new_cluster_id() for _ in range(20)}
    assert len(ids) == 20
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_cluster_id_never_reads_as_an_option() -> None:
    # 1 in 64 random ids starts with "-", which `kafka-storage format -t` took for an option.
    assert not any(kafka.new_cluster_id().startswith("-") for _ in range(2000))


def test_kafka_command_line_uses_cached_jars_and_rendered_config(tmp_path: Path) -> None:
    service = kafka.Kafka(Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache"))
    argv = service.argv()
    assert argv[0] == "java"
    assert (
        argv[argv.index("-cp") + 1]
        == f"{tmp_path}/cache/kafka/{service.settings.kafka_version}/libs/*"
    )
    assert argv[-2:] == ["kafka.Kafka", str(tmp_path / "state" / "kafka" / "server.properties")]


def test_jar_manifest_detects_missing_and_changed_jars(tmp_path: Path) -> None:
    assert not kafka.manifest_ok(tmp_path)
    (tmp_path / "a.jar").write_bytes(b"one")
    (tmp_path / "b.jar").write_bytes(b"two")
    kafka.write_manifest(tmp_path)
    assert kafka.manifest_ok(tmp_path)
    (tmp_path / "b.jar").write_bytes(b"tampered")
    assert not kafka.manifest_ok(tmp_path)
    (tmp_path / "b.jar").unlink()
    assert not kafka.manifest_ok(tmp_path)


def test_ferretdb_command_line(tmp_path: Path) -> None:
    argv = mongo.ferretdb_argv(Path("/bin/ferretdb"), "127.0.0.1", 27018, tmp_path)
    assert argv[0] == "/bin/ferretdb"
    assert "--handler=sqlite" in argv
    assert f"--sqlite-url=file:{tmp_path}/data/" in argv
    assert "--listen-addr=127.0.0.1:27018" in argv
    assert "--telemetry=disable" in argv


def test_mongod_command_line(tmp_path: Path) -> None:
    argv = mongo.mongod_argv("/usr/bin/mongod", "127.0.0.1", 27018, tmp_path)
    assert argv == ["/usr/bin/mongod", "--dbpath", f"{tmp_path}/data", "--bind_ip", "127.0.0.1",
                    "--port", "27018"]  # fmt: skip


def test_prometheus_targets_follow_the_settings() -> None:
    settings = Settings(worker_web_port=7066, model_server_port=7000, prometheus_port=7090,
                        emitter_metrics_port=7101, checker_metrics_port=7102,
                        alertmanager_port=7103, blackbox_port=7115)  # fmt: skip
    targets = prometheus.scrape_targets(settings)
    assert targets == {
        "prometheus": "127.0.0.1:7090",
        "worker": "127.0.0.1:7066",
        "model-server": "127.0.0.1:7000",
        "emitter": "127.0.0.1:7101",
        "checker": "127.0.0.1:7102",
        "alertmanager": "127.0.0.1:7103",
        "blackbox": "127.0.0.1:7115",
    }
    document = json.loads(prometheus.file_sd("worker", targets["worker"]))
    assert document == [{"targets": ["127.0.0.1:7066"], "labels": {"component": "worker"}}]


def test_probes_go_through_the_blackbox_exporter_to_every_kafka_node() -> None:
    settings = Settings(kafka_brokers=3, blackbox_port=7115, mongo_port=7017, mlflow_port=7000)
    probes = json.loads(prometheus.probe_sd(settings))
    assert {tuple(group["targets"]) for group in probes} == {("127.0.0.1:7115",)}
    assert [(g["labels"]["component"], g["labels"]["__param_target"],
             g["labels"]["__param_module"]) for g in probes] == [
        ("kafka", "127.0.0.1:9092", "tcp_connect"),
        ("kafka", "127.0.0.1:9094", "tcp_connect"),
        ("kafka", "127.0.0.1:9096", "tcp_connect"),
        ("mongo", "127.0.0.1:7017", "tcp_connect"),
        ("mlflow", "http://127.0.0.1:7000/health", "http_2xx"),
    ]  # fmt: skip
    assert all(g["labels"]["instance"] == g["labels"]["__param_target"] for g in probes)


def test_prometheus_prepare_copies_config_and_writes_targets(tmp_path: Path) -> None:
    service = prometheus.Prometheus(Settings(state_dir=tmp_path))
    service.prepare()
    assert (service.config_dir / "prometheus.yml").is_file()
    written = sorted(p.name for p in (service.config_dir / "targets").glob("*.json"))
    assert written == ["alertmanager.json", "blackbox.json", "checker.json", "emitter.json",
                       "model-server.json", "prometheus.json", "worker.json"]  # fmt: skip
    assert (service.config_dir / "probes.json").is_file()
    assert (service.config_dir / "alertmanagers.json").is_file()
    assert f"--config.file={service.config_dir / 'prometheus.yml'}" in service.argv()


def test_mlflow_server_uses_sqlite_and_local_artifacts(tmp_path: Path) -> None:
    service = MlflowServer(Settings(state_dir=tmp_path, mlflow_port=5055))
    argv = service.argv()
    assert argv[argv.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert argv[argv.index("--port") + 1] == "5055"
    assert service.env()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
