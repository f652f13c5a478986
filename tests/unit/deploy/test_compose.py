"""compose.yaml and its secured overlay compose.secure.yaml, checked without a Docker engine.

Schema: the Compose Specification's own JSON Schema (vendored, deploy/compose/compose-spec/).
Structure: the things a schema cannot know and a `docker compose up` would only reveal at run
time: setting names that no code reads, host ports that block `--scale worker=3`, CLI options
that do not exist, a Prometheus that scrapes one worker of three; secured, a client left on
PLAINTEXT, a secret given as a value, a secret file that nothing makes or that git would keep.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_checks import (
    INTERPOLATION,
    ROOT,
    SECRET_SETTINGS,
    SETTING_NAMES,
    cli_argv_problem,
    cli_argvs,
    env_names,
    interpolate_defaults,
    merge_compose,
    setting_default,
    unknown_settings,
)

from icecube_stream.config import Settings
from icecube_stream.stack import credentials
from icecube_stream.stack.kafka import BrokerTls, server_properties
from icecube_stream.stack.prometheus import scrape_targets
from icecube_stream.tools import compose_secure

pytestmark = pytest.mark.unit

COMPOSE = ROOT / "compose.yaml"
SECURE = ROOT / "compose.secure.yaml"
START_SECURE = ROOT / "deploy" / "compose" / "kafka" / "start-secure.sh"
SCHEMA = ROOT / "deploy" / "compose" / "compose-spec" / "compose-spec.json"
PROM_SHARED = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROM_COMPOSE = ROOT / "deploy" / "compose" / "prometheus" / "prometheus.yml"
# Our image's services; the rest run upstream images with their own configuration.
APP_SERVICES = {"topics", "mlflow", "model-server", "worker", "emitter", "simulate", "train"}
EXPECTED = APP_SERVICES | {"kafka", "mongo", "prometheus", "alertmanager", "blackbox", "grafana"}
# Environment names of our services that are not ICECUBE_ settings, each read by a library.
FOREIGN_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "MLFLOW_SERVER_ALLOWED_HOSTS"}
# Secured: the one-shot that makes the Kafka users and ACLs, and who logs in to Kafka as whom.
SECURE_SERVICES = EXPECTED | {"kafka-access"}
KAFKA_USERS = {
    "topics": credentials.ADMIN,
    "kafka-access": credentials.ADMIN,
    "worker": "worker",
    "emitter": "emitter",
}
MONGO_CLIENTS = {"worker", "emitter"}
MLFLOW_CLIENTS = {"model-server", "train"}
SECURE_FOREIGN_ENV = FOREIGN_ENV | {"MLFLOW_AUTH_CONFIG_PATH"}
SECRETS_MOUNT = "/run/secrets/"
SECRET_WORD = re.compile(r"PASSWORD|TOKEN|SECRET|CREDENTIAL", re.IGNORECASE)
PORT = re.compile(r"^127\.0\.0\.1:\$\{(?P<var>[A-Z_]+):-(?P<default>\d+)\}:(?P<target>\d+)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(interpolate_defaults(COMPOSE.read_text()))
    return loaded


@pytest.fixture(scope="module")
def overlay() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(interpolate_defaults(SECURE.read_text()))
    return loaded


@pytest.fixture(scope="module")
def secure(compose: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`docker compose -f compose.yaml -f compose.secure.yaml`, merged as compose does."""
    merged: dict[str, Any] = merge_compose(compose, overlay)
    return merged


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    # The file names draft-07 (its $schema lacks the '#' that jsonschema looks up).
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "worker", "depends_on", "topics", "condition"), "service_done"),
        (("services", "worker", "scale_out"), 3),
        (("services", "kafka", "healthcheck", "retries"), [12]),
        (("services", "worker", "ports"), "8080:8080"),
    ],
)
def test_schema_rejects_what_compose_would_reject(
    compose: dict[str, Any],
    validator: jsonschema.protocols.Validator,
    path: tuple[str, ...],
    value: object,
) -> None:
    """The validator bites: a wrong condition, an unknown key, a wrong type each fail."""
    broken = copy.deepcopy(compose)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert not validator.is_valid(broken)


def test_every_component_is_a_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == EXPECTED


def test_icecube_names_are_settings_everywhere_in_the_file() -> None:
    """Every ${ICECUBE_*} interpolation and environment key is a field of Settings."""
    text = COMPOSE.read_text()
    interpolated = set(INTERPOLATION.findall(text))
    keys = set(re.findall(r"^\s+(ICECUBE_[A-Z0-9_]+):", text, flags=re.MULTILINE))
    assert keys, "no ICECUBE_ environment found: the pattern no longer matches the file"
    assert unknown_settings(interpolated | keys) == []
    # Compose-only variables are marked as such, never mistaken for settings.
    assert {v for v in interpolated if not v.startswith("ICECUBE_")} <= {
        v for v in interpolated if v.startswith("DEPLOY_")
    }


def test_a_misspelt_setting_would_be_caught() -> None:
    assert unknown_settings(["ICECUBE_KAFKA_HOST", "ICECUBE_KAFKA_PROT", "PATH"]) == [
        "ICECUBE_KAFKA_PROT"
    ]
    assert "ICECUBE_KAFKA_HOST" in SETTING_NAMES


def test_app_services_environment(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        names = env_names(compose["services"][name].get("environment"))
        assert unknown_settings(names) == [], name
        assert {n for n in names if not n.startswith("ICECUBE_")} <= FOREIGN_ENV, name
    # Clients reach peers by service name; the names must be services of this file.
    env = compose["services"]["worker"]["environment"]
    for key in ("ICECUBE_KAFKA_HOST", "ICECUBE_MONGO_HOST", "ICECUBE_MODEL_SERVER_HOST"):
        assert env[key] in compose["services"], key


def test_kafka_listener_matches_the_clients_port(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]["environment"]
    client_port = compose["services"]["worker"]["environment"]["ICECUBE_KAFKA_PORT"]
    assert f"INTERNAL://kafka:{client_port}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert f"INTERNAL://:{client_port}" in kafka["KAFKA_LISTENERS"]
    host_port = Settings().kafka_port
    assert f"HOST://localhost:{host_port}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{Settings().kafka_version}"


def test_published_ports_are_loopback_settings_ports_and_unique(compose: dict[str, Any]) -> None:
    """A host port comes from the same ICECUBE_*_PORT a host-side CLI reads, on 127.0.0.1."""
    raw: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    seen: dict[str, str] = {}
    for name, service in raw["services"].items():
        for mapping in service.get("ports", []):
            match = PORT.match(mapping)
            assert match, f"{name}: {mapping!r} is not 127.0.0.1:${{VAR:-port}}:port"
            var, default = match["var"], match["default"]
            if var.startswith("ICECUBE_"):
                assert int(default) == setting_default(var), f"{name}: {mapping}"
            else:
                assert var.startswith("DEPLOY_"), f"{name}: {mapping}"
            assert default not in seen, f"{name} and {seen.get(default)} publish {default}"
            seen[default] = name


def test_in_container_ports_are_the_settings_defaults(compose: dict[str, Any]) -> None:
    """Containers use default ports, so the command line, health check and peers agree."""
    s = Settings()
    services = compose["services"]
    model = services["model-server"]
    assert model["command"][model["command"].index("--port") + 1] == str(s.model_server_port)
    assert f":{s.model_server_port}/readyz" in " ".join(model["healthcheck"]["test"])
    assert f":{s.worker_web_port}/metrics" in " ".join(services["worker"]["healthcheck"]["test"])
    assert f"--port={s.mlflow_port}" in services["mlflow"]["command"]
    assert f":{s.mlflow_port}/health" in " ".join(services["mlflow"]["healthcheck"]["test"])


def test_worker_scales(compose: dict[str, Any]) -> None:
    """`--scale worker=3` fails on a fixed container name or host port; none may be set."""
    worker = compose["services"]["worker"]
    for key in ("container_name", "ports", "hostname"):
        assert key not in worker
    assert all("container_name" not in s for s in compose["services"].values())
    assert worker["command"] == ["faust", "-A", "icecube_stream.app", "worker", "-l", "info"]


def check_start_order(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"
            if spec["condition"] == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is not one-shot"
    long_running = {n for n, s in services.items() if s.get("restart") != "no"}
    assert {n for n in long_running if "healthcheck" not in services[n]} == set()


def test_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    check_start_order(services)
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["topics"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["emitter"]["depends_on"]["topics"]["condition"] == (
        "service_completed_successfully"
    )


def test_cli_commands_parse(compose: dict[str, Any]) -> None:
    """Every `icecube-stream ...` a service runs names real commands and options."""
    checked = 0
    for name, service in compose["services"].items():
        command = service.get("command")
        if command is None:
            continue
        for argv in cli_argvs(command):
            assert cli_argv_problem(argv) is None, f"{name}: {cli_argv_problem(argv)}"
            checked += 1
    assert checked >= 4  # topics, emitter, simulate, train
    assert "--frobnicate" in str(cli_argv_problem(["produce", "--data", "/d", "--frobnicate"]))
    assert "'topic'" in str(cli_argv_problem(["topic", "apply"]))
    assert cli_argv_problem(["produce", "--data", "/data", "--rate", "fast"]) is not None


def test_emitter_reads_the_mounted_folder(compose: dict[str, Any]) -> None:
    emitter = compose["services"]["emitter"]
    (argv,) = cli_argvs(emitter["command"])
    data = argv[argv.index("--data") + 1]
    assert "--watch" in argv  # sends files as they arrive, archives them: needs write access
    assert any(v.split(":")[1:] == [data] for v in emitter["volumes"])


def test_bind_mounts_exist(compose: dict[str, Any]) -> None:
    missing = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./deploy") and not (ROOT / source).exists():
                missing.append(f"{name}: {source}")
    if missing and all(m.startswith("grafana: ./deploy/grafana") for m in missing):
        pytest.skip("deploy/grafana/ (dashboards, provisioning) is not committed yet")
    assert missing == []


def test_grafana_provisioning_points_into_this_compose_file(compose: dict[str, Any]) -> None:
    """The datasource URL is our Prometheus; the dashboard provider reads a mounted folder."""
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    if not provisioning.is_dir():
        pytest.skip("deploy/grafana/provisioning is not committed yet")
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    for path in (provisioning / "datasources").glob("*.y*ml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            if source["type"] == "prometheus":
                url = source["url"].removeprefix("http://")
                host, port = url.rstrip("/").split(":")
                assert host in compose["services"], path
                assert int(port) == Settings().prometheus_port, path
    for path in (provisioning / "dashboards").glob("*.y*ml"):
        for provider in yaml.safe_load(path.read_text())["providers"]:
            assert provider["options"]["path"] in mounts.values(), path


def test_prometheus_under_compose_follows_the_shared_configuration() -> None:
    shared = yaml.safe_load(PROM_SHARED.read_text())
    ours = yaml.safe_load(PROM_COMPOSE.read_text())
    assert ours["global"] == shared["global"]
    mounted = [f"/etc/prometheus/shared/{f}" for f in shared.get("rule_files", [])]
    assert set(mounted) <= set(ours["rule_files"])
    for rule_file in ours["rule_files"]:
        assert rule_file.startswith("/etc/prometheus/shared/")
    assert (ROOT / "deploy" / "prometheus" / "alerts.yml").is_file()
    assert ours["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]


def test_compose_scrape_targets_match_the_local_stack(compose: dict[str, Any]) -> None:
    """Same `component` labels as the local stack, at the service names and default ports."""
    local = scrape_targets(Settings(host="HOST"))
    found: dict[str, str] = {}
    for path in sorted((PROM_COMPOSE.parent / "targets").glob("*.json")):
        (group,) = json.loads(path.read_text())
        assert group["labels"]["component"] == path.stem
        (found[path.stem],) = group["targets"]
    ours = yaml.safe_load(PROM_COMPOSE.read_text())
    (worker_job,) = [j for j in ours["scrape_configs"] if "dns_sd_configs" in j]
    (dns,) = worker_job["dns_sd_configs"]
    found["worker"] = f"{dns['names'][0]}:{dns['port']}"
    assert worker_job["relabel_configs"][0]["replacement"] == "worker"
    assert set(found) <= set(local)
    assert {"prometheus", "worker", "model-server"} <= set(found)
    for component, address in found.items():
        host, port = address.rsplit(":", 1)
        assert port == local[component].rsplit(":", 1)[1], component
        assert host == "localhost" or host in compose["services"], component


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """promtool (the local stack's, when installed) checks the file as Prometheus would."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (icecube-stream stack install brings it)")
    tree = tmp_path / "compose"
    shutil.copytree(PROM_COMPOSE.parent, tree)
    shutil.copytree(PROM_SHARED.parent, tmp_path / "shared")
    config = tree / "prometheus.yml"
    text = config.read_text().replace("/etc/prometheus/shared/", f"{tmp_path}/shared/")
    config.write_text(text)
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- compose.secure.yaml: `docker compose -f compose.yaml -f compose.secure.yaml` ---------------


def service_secrets(service: dict[str, Any]) -> set[str]:
    """The paths under /run/secrets/ where a service's secrets are mounted."""
    found = set()
    for item in service.get("secrets", []):
        if isinstance(item, dict):
            found.add(item.get("target") or f"{SECRETS_MOUNT}{item['source']}")
        else:
            found.add(f"{SECRETS_MOUNT}{item}")
    return found


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_secure_overlay_is_valid_against_the_compose_specification(
    overlay: dict[str, Any], secure: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    for model in (overlay, secure):
        errors = [
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(model)
        ]
        assert errors == []


def test_secure_overlay_adds_only_the_kafka_access_one_shot(
    overlay: dict[str, Any], secure: dict[str, Any]
) -> None:
    assert set(secure["services"]) == SECURE_SERVICES
    assert set(overlay["services"]) <= SECURE_SERVICES
    assert "name" not in overlay  # the project stays compose.yaml's


def test_secure_names_are_settings_and_compose_variables() -> None:
    """ICECUBE_<NAME>_FILE counts as the setting NAME; a misspelt one is still caught."""
    text = SECURE.read_text()
    interpolated = set(INTERPOLATION.findall(text))
    keys = set(re.findall(r"^\s+(ICECUBE_[A-Z0-9_]+):", text, flags=re.MULTILINE))
    assert {"ICECUBE_KAFKA_PASSWORD_FILE", "ICECUBE_MODEL_SERVER_TOKEN_FILE"} <= keys
    assert unknown_settings(interpolated | keys) == []
    assert {v for v in interpolated if not v.startswith(("ICECUBE_", "DEPLOY_"))} == set()
    assert unknown_settings(["ICECUBE_KAFKA_PASWORD_FILE"]) == ["ICECUBE_KAFKA_PASWORD_FILE"]


def test_secure_app_services_environment(secure: dict[str, Any]) -> None:
    for name in APP_SERVICES | {"kafka-access"}:
        names = env_names(secure["services"][name].get("environment"))
        assert unknown_settings(names) == [], name
        assert {n for n in names if not n.startswith("ICECUBE_")} <= SECURE_FOREIGN_ENV, name


def test_every_kafka_client_logs_in_over_sasl_ssl_with_a_password_file(
    secure: dict[str, Any],
) -> None:
    services = secure["services"]
    # Who talks to Kafka: the services that wait for it, its topics or its users (and the
    # worker); each is listed with the user it logs in as.
    waiting = {
        name
        for name, service in services.items()
        if {"kafka", "topics", "kafka-access"} & set(service.get("depends_on", {}))
    }
    assert waiting <= set(KAFKA_USERS), waiting - set(KAFKA_USERS)
    for name, user in KAFKA_USERS.items():
        env, mounted = services[name]["environment"], service_secrets(services[name])
        assert env["ICECUBE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env.get("ICECUBE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512") == "SCRAM-SHA-512"
        assert env["ICECUBE_KAFKA_USERNAME"] == user, name
        assert env["ICECUBE_KAFKA_PASSWORD_FILE"] == f"{SECRETS_MOUNT}kafka-{user}", name
        assert env["ICECUBE_KAFKA_CA_FILE"] == f"{SECRETS_MOUNT}{compose_secure.CA}", name
        assert {env["ICECUBE_KAFKA_PASSWORD_FILE"], env["ICECUBE_KAFKA_CA_FILE"]} <= mounted, name
        assert env["ICECUBE_KAFKA_HOST"] == "kafka" and env["ICECUBE_KAFKA_PORT"] == "19092", name
    # Every user is one stack/credentials.py knows; the pipeline's own have their grants.
    granted = {grant.user for grant in credentials.grants(Settings())}
    assert set(KAFKA_USERS.values()) <= set(credentials.USERS)
    assert set(KAFKA_USERS.values()) - {credentials.ADMIN} <= granted
    # The one-shot sets every user's credential: it has every password file.
    access = service_secrets(services["kafka-access"])
    assert {f"{SECRETS_MOUNT}kafka-{user}" for user in credentials.USERS} <= access
    # Services that never touch Kafka get no Kafka secret.
    for name in APP_SERVICES - set(KAFKA_USERS):
        assert not any("kafka" in path for path in service_secrets(services[name])), name


def test_no_secret_is_an_environment_value(compose: dict[str, Any], secure: dict[str, Any]) -> None:
    """Only ICECUBE_*_FILE (and the servers' own *_FILE) name a secret, by a path under
    /run/secrets; no ICECUBE_*PASSWORD/TOKEN variable carries a value, in either file."""
    for model in (compose, secure):
        for name, service in model["services"].items():
            env = service.get("environment") or {}
            assert isinstance(env, dict), name
            assert not SECRET_SETTINGS & set(env), name
            for key, value in env.items():
                if SECRET_WORD.search(key):
                    assert key.endswith("_FILE"), f"{name}: {key} carries a value"
                    assert str(value).startswith(SECRETS_MOUNT), f"{name}: {key}={value}"
                    assert str(value) in service_secrets(service), f"{name}: {value} not mounted"
    # The one secret a server reads from a variable only is exported from its file by the
    # container's shell, so its value is in neither this file nor `docker inspect`.
    command = " ".join(secure["services"]["mlflow"]["command"])
    csrf = f"{SECRETS_MOUNT}mlflow-csrf"
    assert f'export MLFLOW_FLASK_SERVER_SECRET_KEY="$$(cat {csrf})"' in command
    assert csrf in service_secrets(secure["services"]["mlflow"])


def test_every_secret_path_is_mounted_and_every_secret_file_is_the_generators(
    overlay: dict[str, Any], secure: dict[str, Any]
) -> None:
    declared = overlay["secrets"]
    for name, spec in declared.items():
        assert spec == {"file": f"./deploy/compose/secrets/{name}"}, name
        assert name in compose_secure.mounted_names(), f"{name}: no generator writes it"
    assert compose_secure.CA_KEY not in declared  # the CA's key never leaves the host
    used = set()
    for name, service in secure["services"].items():
        for item in service.get("secrets", []):
            source = item["source"] if isinstance(item, dict) else item
            assert source in declared, f"{name}: secret {source} is not declared"
            used.add(source)
        # Every /run/secrets path a service names (environment, command, health check) is
        # mounted in that service.
        text = json.dumps({k: v for k, v in service.items() if k != "secrets"})
        for path in re.findall(r"/run/secrets/[A-Za-z0-9._-]+", text):
            assert path in service_secrets(service), f"{name}: {path} is not mounted"
    assert used == set(declared)
    # The generator's in-file references (client properties' trust store) are mounted too.
    assert compose_secure.MOUNT.as_posix() + "/" == SECRETS_MOUNT


def test_the_secrets_folder_is_git_ignored() -> None:
    assert "/deploy/compose/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("no git checkout to ask")
    for name in [*compose_secure.mounted_names(), compose_secure.CA_KEY, compose_secure.HOST_ENV]:
        result = subprocess.run(
            [git, "-C", str(ROOT), "check-ignore", "-q", f"deploy/compose/secrets/{name}"],
            check=False,
        )
        assert result.returncode == 0, f"git would keep deploy/compose/secrets/{name}"
    tracked = subprocess.run(
        [git, "-C", str(ROOT), "ls-files", "deploy/compose/secrets"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert tracked.stdout == ""


def test_kafka_listeners_have_no_plaintext(secure: dict[str, Any]) -> None:
    kafka = secure["services"]["kafka"]
    env = kafka["environment"]
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    listeners = {item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")}
    advertised = {item.split("://")[0] for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert set(protocols) == listeners and advertised <= listeners
    controllers = set(env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))
    assert {protocols[name] for name in listeners - controllers} == {"SASL_SSL"}
    assert {protocols[name] for name in controllers} == {"SSL"}
    assert "PLAINTEXT" not in json.dumps(env)
    assert protocols[env["KAFKA_INTER_BROKER_LISTENER_NAME"]] == "SASL_SSL"
    assert env["KAFKA_LISTENER_NAME_CONTROLLER_SSL_CLIENT_AUTH"] == "required"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == Settings().kafka_sasl_mechanism
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith(".StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == (
        f"User:{credentials.ADMIN};User:CN={credentials.BROKER_CERT}"
    )
    mounted = service_secrets(kafka)
    keystore = f"{SECRETS_MOUNT}{compose_secure.bundle(credentials.BROKER_CERT)}"
    assert env["KAFKA_SSL_KEYSTORE_LOCATION"] == keystore and keystore in mounted
    assert env["KAFKA_SSL_TRUSTSTORE_LOCATION"] == f"{SECRETS_MOUNT}{compose_secure.CA}"
    jaas = f"{SECRETS_MOUNT}{compose_secure.KAFKA_JAAS}"
    assert env["KAFKA_OPTS"] == f"-Djava.security.auth.login.config={jaas}" and jaas in mounted
    # The broker certificate names the host the containers and the host's clients dial.
    host_names = compose_secure.CERTIFICATES[credentials.BROKER_CERT]
    for address in env["KAFKA_ADVERTISED_LISTENERS"].split(","):
        assert address.split("://")[1].rsplit(":", 1)[0] in host_names, address
    health = " ".join(kafka["healthcheck"]["test"])
    assert f"--command-config {SECRETS_MOUNT}{compose_secure.KAFKA_ADMIN_PROPERTIES}" in health


def test_the_kafka_start_script_renders_what_the_local_stack_secures_with(
    secure: dict[str, Any], tmp_path: Path
) -> None:
    """deploy/compose/kafka/start-secure.sh turns the KAFKA_* variables into server.properties
    (the image's rule); the security there is the secured local stack's, property by property."""
    kafka = secure["services"]["kafka"]
    mount = dict(v.split(":")[:2] for v in kafka["volumes"] if isinstance(v, str))
    assert mount["./deploy/compose/kafka/start-secure.sh"] == kafka["command"][-1]
    assert kafka["command"][0] == "bash"
    env = {key: str(value) for key, value in kafka["environment"].items()}
    rendered_file = tmp_path / "server.properties"
    subprocess.run(
        ["bash", str(START_SECURE), "--render-only", str(rendered_file)],
        env={"PATH": "/usr/bin:/bin", **env},
        check=True,
    )
    rendered = properties(rendered_file.read_text())
    assert rendered["listener.security.protocol.map"] == env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert rendered["listener.name.controller.ssl.client.auth"] == "required"
    assert rendered["log.dirs"] == "/var/lib/kafka/data"
    assert not {"opts", "heap.opts"} & set(rendered)  # the JVM's variables are not properties
    assert "password" not in rendered_file.read_text()
    local = properties(
        server_properties(Settings(), 1, tmp_path, BrokerTls(tmp_path / "k", tmp_path / "c", "x"))
    )
    for key in (
        "sasl.enabled.mechanisms",
        "sasl.mechanism.inter.broker.protocol",
        "ssl.keystore.type",
        "ssl.truststore.type",
        "listener.name.controller.ssl.client.auth",
        "authorizer.class.name",
        "allow.everyone.if.no.acl.found",
        "super.users",
        "auto.create.topics.enable",
    ):
        assert rendered[key] == local[key], key
    # First start: formatted with admin's SCRAM credential from its mounted file.
    script = START_SECURE.read_text()
    assert f"name={credentials.ADMIN}," in script
    assert f"{SECRETS_MOUNT}kafka-{credentials.ADMIN}" in script
    assert f"{SECRETS_MOUNT}kafka-{credentials.ADMIN}" in service_secrets(kafka)
    shellcheck = shutil.which("shellcheck")
    if shellcheck:
        result = subprocess.run(
            [shellcheck, str(START_SECURE)], check=False, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout


def test_mongo_requires_tls_and_a_root_user_from_files(secure: dict[str, Any]) -> None:
    mongo = secure["services"]["mongo"]
    command, mounted = mongo["command"], service_secrets(mongo)
    assert command[0] == "mongod"
    assert command[command.index("--tlsMode") + 1] == "requireTLS"
    assert command[command.index("--tlsCertificateKeyFile") + 1] in mounted
    assert command[command.index("--tlsCAFile") + 1] == f"{SECRETS_MOUNT}{compose_secure.CA}"
    env = mongo["environment"]
    assert env["MONGO_INITDB_ROOT_USERNAME"] == credentials.ADMIN
    assert env["MONGO_INITDB_ROOT_PASSWORD_FILE"] == f"{SECRETS_MOUNT}mongo-{credentials.ADMIN}"
    assert "MONGO_INITDB_ROOT_PASSWORD" not in env
    assert "--tls" in mongo["healthcheck"]["test"]
    host_names = compose_secure.CERTIFICATES["mongo"]
    assert "mongo" in host_names and "localhost" in host_names  # peers, health check, host
    for name in MONGO_CLIENTS:
        service = secure["services"][name]
        client = service["environment"]
        assert client["ICECUBE_MONGO_TLS"] == "true", name
        assert client["ICECUBE_MONGO_HOST"] == "mongo", name
        assert client["ICECUBE_MONGO_USERNAME"] == env["MONGO_INITDB_ROOT_USERNAME"], name
        assert client["ICECUBE_MONGO_PASSWORD_FILE"] == env["MONGO_INITDB_ROOT_PASSWORD_FILE"]
        assert {client["ICECUBE_MONGO_CA_FILE"], client["ICECUBE_MONGO_PASSWORD_FILE"]} <= (
            service_secrets(service)
        ), name


def test_mlflow_runs_its_basic_auth_app_and_its_clients_log_in(secure: dict[str, Any]) -> None:
    mlflow = secure["services"]["mlflow"]
    command = mlflow["command"]
    assert command[:2] == ["sh", "-c"]
    words = command[2].split()
    assert "--app-name=basic-auth" in words
    assert f"--port={Settings().mlflow_port}" in words
    config = mlflow["environment"]["MLFLOW_AUTH_CONFIG_PATH"]
    assert config == f"{SECRETS_MOUNT}{compose_secure.MLFLOW_AUTH}"
    assert config in service_secrets(mlflow)
    # The auth app's users live in the server's volume, not in the read-only secret.
    (volume,) = [v for v in mlflow["volumes"] if v.startswith("mlflow-secure-data:")]
    assert compose_secure.MLFLOW_AUTH_DB.startswith(volume.split(":")[1] + "/")
    assert f"{volume.split(':')[1]}/mlflow.db" in command[2]
    for name in MLFLOW_CLIENTS:
        service = secure["services"][name]
        env = service["environment"]
        assert env["ICECUBE_MLFLOW_USERNAME"] == credentials.ADMIN, name
        assert env["ICECUBE_MLFLOW_PASSWORD_FILE"] == f"{SECRETS_MOUNT}mlflow-{credentials.ADMIN}"
        assert env["ICECUBE_MLFLOW_PASSWORD_FILE"] in service_secrets(service), name


def test_the_model_server_requires_the_token_the_worker_sends(secure: dict[str, Any]) -> None:
    services = secure["services"]
    token = f"{SECRETS_MOUNT}model-server-token"
    for name in ("model-server", "worker"):
        assert services[name]["environment"]["ICECUBE_MODEL_SERVER_TOKEN_FILE"] == token, name
        assert token in service_secrets(services[name]), name


def test_secure_start_order(secure: dict[str, Any]) -> None:
    services = secure["services"]
    check_start_order(services)
    access = services["kafka-access"]
    assert access["restart"] == "no"
    assert access["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("worker", "emitter"):
        assert services[name]["depends_on"]["kafka-access"]["condition"] == (
            "service_completed_successfully"
        ), name
    # The one-shot runs the project's image, built like every other app service.
    assert access["image"] == services["worker"]["image"]
    assert access["build"] == services["worker"]["build"]


def test_the_kafka_access_command_parses(secure: dict[str, Any]) -> None:
    command = secure["services"]["kafka-access"]["command"]
    assert command[:3] == ["python", "-m", compose_secure.__name__]
    args = compose_secure.parser().parse_args(command[3:])
    assert args.command == "kafka-access"
    assert args.secrets == compose_secure.MOUNT


def test_secured_data_live_in_volumes_of_their_own(
    compose: dict[str, Any], secure: dict[str, Any]
) -> None:
    """The secured Kafka and MongoDB need storage made secured (SCRAM users at format, a root
    user at init); volumes of their own keep the plain deployment's data apart."""
    for name in ("kafka", "mongo", "mlflow", "grafana"):
        plain = {v.split(":")[1]: v.split(":")[0] for v in compose["services"][name]["volumes"]}
        ours = {v.split(":")[1]: v.split(":")[0] for v in secure["services"][name]["volumes"]}
        for target, source in plain.items():
            if source in compose["volumes"]:
                assert ours[target] != source and ours[target] in secure["volumes"], name


def test_secure_bind_mounts_exist(overlay: dict[str, Any]) -> None:
    for name, service in overlay["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"


def test_merge_agrees_with_docker_compose_config(secure: dict[str, Any], tmp_path: Path) -> None:
    """Where the Docker CLI with its compose plugin is installed (no engine needed), the merge
    these tests check is the one `docker compose config` makes."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI")
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(Path.home())}
    version = [docker, "compose", "version"]
    if subprocess.run(version, check=False, capture_output=True, env=env).returncode:
        pytest.skip("no docker compose plugin")
    files = ["-f", str(COMPOSE), "-f", str(SECURE), "--profile", "tools"]
    result = subprocess.run(
        [docker, "compose", *files, "config", "--format", "json"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    real = json.loads(result.stdout)
    assert set(real["services"]) == set(secure["services"])
    assert set(real["secrets"]) == set(secure["secrets"])
    for name, ours in secure["services"].items():
        theirs = real["services"][name]
        # (Nested interpolation, ${A:-x${B}}, is more than interpolate_defaults reads.)
        env = {k: "" if v is None else str(v) for k, v in (ours.get("environment") or {}).items()}
        plain = {k: v for k, v in env.items() if "$" not in v}
        assert {k: theirs["environment"][k] for k in plain} == plain, name
        assert set(theirs.get("environment", {})) == set(env), name
        assert theirs.get("command") == ours.get("command"), name
        assert theirs.get("healthcheck", {}).get("test") == ours.get("healthcheck", {}).get("test")
        assert {s["source"] for s in theirs.get("secrets", [])} == {
            s if isinstance(s, str) else s["source"] for s in ours.get("secrets", [])
        }, name
        assert {v["target"] for v in theirs.get("volumes", [])} == {
            v.split(":")[1] for v in ours.get("volumes", [])
        }, name
        assert {d: c["condition"] for d, c in theirs.get("depends_on", {}).items()} == {
            d: c["condition"] for d, c in ours.get("depends_on", {}).items()
        }, name
