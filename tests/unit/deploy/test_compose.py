"""compose.yaml, checked without a Docker engine.

Schema: the Compose Specification's own JSON Schema (vendored, deploy/compose/compose-spec/).
Structure: the things a schema cannot know and a `docker compose up` would only reveal at run
time: setting names that no code reads, host ports that block `--scale worker=3`, CLI options
that do not exist, a Prometheus that scrapes one worker of three.
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
    SETTING_NAMES,
    cli_argv_problem,
    cli_argvs,
    env_names,
    interpolate_defaults,
    setting_default,
    unknown_settings,
)

from icecube_stream.config import Settings
from icecube_stream.stack.prometheus import scrape_targets

pytestmark = pytest.mark.unit

COMPOSE = ROOT / "compose.yaml"
SCHEMA = ROOT / "deploy" / "compose" / "compose-spec" / "compose-spec.json"
PROM_SHARED = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROM_COMPOSE = ROOT / "deploy" / "compose" / "prometheus" / "prometheus.yml"
# Our image's services; the rest run upstream images with their own configuration.
APP_SERVICES = {"topics", "mlflow", "model-server", "worker", "emitter", "simulate", "train"}
EXPECTED = APP_SERVICES | {"kafka", "mongo", "prometheus", "alertmanager", "blackbox", "grafana"}
# Environment names of our services that are not ICECUBE_ settings, each read by a library.
FOREIGN_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "MLFLOW_SERVER_ALLOWED_HOSTS"}
PORT = re.compile(r"^127\.0\.0\.1:\$\{(?P<var>[A-Z_]+):-(?P<default>\d+)\}:(?P<target>\d+)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(interpolate_defaults(COMPOSE.read_text()))
    return loaded


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


def test_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"
            if spec["condition"] == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is not one-shot"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["topics"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["emitter"]["depends_on"]["topics"]["condition"] == (
        "service_completed_successfully"
    )
    long_running = {n for n, s in services.items() if s.get("restart") != "no"}
    assert {n for n in long_running if "healthcheck" not in services[n]} == set()


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
