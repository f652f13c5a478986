"""The checked-in alert rules, their tests, the docs and the dashboards agree with each other."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from icecube_stream.tools import dashboards

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
COMPONENTS = ("worker", "model-server", "emitter", "checker")


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_alert_is_actionable_and_documented() -> None:
    runbook = (ROOT / "docs" / "operations.md").read_text()
    headings = {h.lower() for h in re.findall(r"^### (\w+)$", runbook, re.MULTILINE)}
    for rule in rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "none"}, name
        annotations = rule["annotations"]
        assert len(annotations["summary"]) > 20, name
        assert len(annotations["description"]) > 100, name
        link = f"{{{{ $externalLabels.runbook_base }}}}#{name.lower()}"
        assert annotations["runbook_url"] == link, name
        assert name.lower() in headings, f"docs/operations.md has no section for {name}"


def test_every_alert_selects_on_its_component() -> None:
    """Every process exports every metric (zeros included); only the owner's series count."""
    for rule in rules():
        for selector in re.findall(r"icecube_\w+(?:\{[^}]*\})?", rule["expr"]):
            assert "component=" in selector, f"{rule['alert']}: {selector}"


def test_required_alerts_exist() -> None:
    names = {rule["alert"] for rule in rules()}
    for component in ("Worker", "ModelServer", "Emitter"):
        assert {f"{component}HeartbeatMissing", f"{component}HeartbeatStale"} <= names
    assert {"TargetDown", "PipelineLatencyHigh", "ConsumerLagGrowing", "DeadLetters",
            "ModelServerNotReady", "ModelCallErrors", "Watchdog"} <= names  # fmt: skip
    assert {"KafkaDown", "MongoDown", "MlflowDown"} <= names  # services without /metrics
    expressions = {rule["alert"]: rule["expr"] for rule in rules()}
    assert all("absent(" in expressions[n] for n in names if n.endswith("HeartbeatMissing"))
    assert all("time() -" in expressions[n] for n in names if n.endswith("HeartbeatStale"))


def test_every_alert_has_a_test_that_fires_and_one_that_stays_silent() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fires: set[str] = set()
    silent: set[str] = set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert fires == names
    assert silent == names - {"Watchdog"}  # the one alert that is never silent


def test_checked_in_dashboards_are_what_the_generator_writes() -> None:
    rendered = dashboards.render()
    on_disk = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert on_disk == rendered, "run `python -m icecube_stream.tools.dashboards`"


def test_dashboard_panels_use_the_provisioned_datasource_and_do_not_overlap() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    for text in dashboards.render().values():
        board = json.loads(text)
        # Panels name the `datasource` variable (portable); its default is the provisioned uid.
        variable = next(v for v in board["templating"]["list"] if v["name"] == "datasource")
        assert variable["current"]["value"] == uid
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"] and panel["description"]
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
            mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                    for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
            assert not cells & mine, f"{panel['title']} overlaps another panel"
            cells |= mine
            for target in panel["targets"]:
                expr = target["expr"]
                assert "$" not in expr, "no dashboard variables: the live test runs queries as-is"
                for selector in re.findall(r"icecube_\w+(?:\{[^}]*\})?", expr):
                    assert "component=" in selector, f"{panel['title']}: {selector}"


def test_dashboards_cover_what_the_operator_needs() -> None:
    exprs = " ".join(
        t["expr"]
        for text in dashboards.render().values()
        for p in json.loads(text)["panels"]
        for t in p["targets"]
    )
    for metric in ("icecube_pipeline_latency_seconds", "icecube_worker_consumer_lag_messages",
                   "icecube_worker_dlq_total", "ALERTS", "icecube_model_server_model_info",
                   "icecube_model_server_angular_uncertainty_radians",
                   "icecube_checker_angular_error_radians", "icecube_worker_model_retries_total",
                   "icecube_model_server_batch_events", "icecube_model_server_inference_seconds",
                   *(f"icecube_{c.replace('-', '_')}_heartbeat_timestamp_seconds"
                     for c in COMPONENTS[:3])):  # fmt: skip
        assert metric in exprs, metric
