"""The generated dashboards import into any Grafana and say what their numbers mean.

Datasource by variable, never a fixed uid; a unit on every panel; the latency objective drawn;
links between the dashboards and from watched panels to the alerts' runbooks; and a targets
panel that does not show processes run on demand as failures.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from icecube_stream.config import Settings
from icecube_stream.stack.prometheus import scrape_targets
from icecube_stream.tools import dashboards

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
VARIABLE = "${datasource}"


def boards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard, as the generator renders it (the unit test beside this one checks the
    checked-in JSON is the same)."""
    rendered = [json.loads(text) for text in dashboards.render().values()]
    assert len(rendered) == 2
    return {board["uid"]: board for board in rendered}


def panels() -> list[tuple[str, dict[str, Any]]]:
    return [(uid, panel) for uid, board in boards().items() for panel in board["panels"]]


def panel(title: str) -> dict[str, Any]:
    return next(p for _, p in panels() if p["title"] == title)


def alert_rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_every_panel_and_query_uses_the_datasource_variable() -> None:
    for uid, board in boards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        datasource = variables["datasource"]
        assert datasource["type"] == "datasource"
        assert datasource["query"] == "prometheus"
        assert datasource["current"]["value"] == dashboards.PROVISIONED_DATASOURCE_UID
        for found in board["panels"]:
            assert found["datasource"] == {"type": "prometheus", "uid": VARIABLE}, found["title"]
            for target in found["targets"]:
                assert target["datasource"] == {"type": "prometheus", "uid": VARIABLE}
        # No fixed uid hides anywhere else in the JSON (links, overrides, annotations).
        text = json.dumps(board)
        uids = set(re.findall(r'"uid": "([^"]*)"', text)) - {uid}
        assert uids == {VARIABLE}, uids
        assert "__inputs" not in board, "provisioning cannot fill import inputs"


def test_every_panel_has_a_unit() -> None:
    known = {"s", "radian", "short", "percentunit", "Bps", "reqps"}
    for uid, found in panels():
        defaults = found["fieldConfig"]["defaults"]
        unit = defaults.get("unit")
        assert unit and unit != "none", f"{uid}/{found['title']} has no unit"
        assert unit in known or unit.startswith("count:"), f"{found['title']}: {unit}"
        for override in found["fieldConfig"]["overrides"]:
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    assert prop["value"] in known or prop["value"].startswith("count:")
        # A stat panel always has its own thresholds, never Grafana's default red at 80.
        assert defaults["thresholds"]["steps"][0]["value"] is None


def test_units_fit_the_queries() -> None:
    for _, found in panels():
        exprs = " ".join(t["expr"] for t in found["targets"])
        unit = found["fieldConfig"]["defaults"]["unit"]
        if "_seconds_bucket" in exprs and "histogram_quantile" in exprs:
            assert unit == "s", found["title"]
        if "_radians" in exprs:
            assert unit == "radian", found["title"]
        if "time() -" in exprs:
            assert unit == "s", found["title"]
    assert panel("Failed model calls")["fieldConfig"]["defaults"]["unit"] == "percentunit"
    bytes_override = panel("Frames read and bytes emitted")["fieldConfig"]["overrides"]
    assert {"id": "unit", "value": "Bps"} in bytes_override[0]["properties"]


def steps(config: dict[str, Any]) -> dict[float, str]:
    return {s["value"]: s["color"] for s in config["thresholds"]["steps"] if s["value"] is not None}


def test_the_latency_panel_draws_the_5_s_objective() -> None:
    latency = panel("End-to-end latency")
    defaults = latency["fieldConfig"]["defaults"]
    assert defaults["unit"] == "s"
    assert steps(defaults) == {5.0: "red"}
    assert defaults["custom"]["thresholdsStyle"]["mode"] in {"line", "line+area", "dashed",
                                                             "dashed+area"}  # fmt: skip
    # The same 5 s as the alert that pages on it.
    expr = alert_rules()["PipelineLatencyHigh"]["expr"]
    assert "icecube_pipeline_latency_seconds_bucket" in expr
    assert re.search(r">\s*5\s*$", expr.strip())
    assert dashboards.LATENCY_OBJECTIVE_S == 5.0


def test_thresholds_follow_the_alerts() -> None:
    lag = panel("Consumer lag per partition")["fieldConfig"]["defaults"]
    assert 100 in steps(lag) and "> 100" in alert_rules()["ConsumerLagGrowing"]["expr"]
    failed = panel("Failed model calls")["fieldConfig"]["defaults"]
    assert steps(failed) == {0.05: "red"} and "> 0.05" in alert_rules()["ModelCallErrors"]["expr"]
    heartbeat = panel("Heartbeat age")
    assert steps(heartbeat["fieldConfig"]["defaults"]) == {30: "red"}
    emitter = heartbeat["fieldConfig"]["overrides"][0]
    assert emitter["matcher"] == {"id": "byFrameRefID", "options": "A"}
    assert "emitter" in heartbeat["targets"][0]["expr"]
    (emitter_thresholds,) = [p["value"] for p in emitter["properties"] if p["id"] == "thresholds"]
    assert steps({"thresholds": emitter_thresholds}) == {60: "red"}
    rules = alert_rules()
    assert "> 30" in rules["WorkerHeartbeatStale"]["expr"]
    assert "> 60" in rules["EmitterHeartbeatStale"]["expr"]


def test_each_dashboard_links_to_the_other() -> None:
    found = boards()
    for uid, board in found.items():
        targets = {link["url"] for link in board["links"]}
        others = {f"/d/{other}" for other in found if other != uid}
        assert others <= targets, f"{uid} does not link to {others - targets}"
        for link in board["links"]:
            assert link["keepTime"] and link["includeVars"]


def test_watched_panels_link_to_their_alerts_runbook() -> None:
    runbook = (ROOT / "docs" / "operations.md").read_text()
    headings = {h.lower() for h in re.findall(r"^### (\w+)$", runbook, re.MULTILINE)}
    alerts = set(alert_rules())
    linked: set[str] = set()
    for _, board in boards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["runbook"]["current"]["value"] == dashboards.RUNBOOK_BASE_URL
        for found in board["panels"]:
            anchors = set()
            for link in found.get("links", []):
                base, _, anchor = link["url"].partition("#")
                assert base == "${runbook}", "one base for every runbook link: the variable"
                assert anchor in headings, f"{found['title']}: no section #{anchor}"
                anchors.add(anchor)
            # Every alert a panel's description names is one click away.
            named = {a for a in alerts if re.search(rf"\b{a}\b", found["description"])}
            assert {a.lower() for a in named} <= anchors, found["title"]
            linked |= anchors
    assert {"pipelinelatencyhigh", "consumerlaggrowing", "deadletters", "targetdown",
            "modelcallerrors", "modelservernotready"} <= linked  # fmt: skip
    # The base URL is in the variable only: changing it there moves every runbook link.
    for board in boards().values():
        assert dashboards.RUNBOOK_BASE_URL not in json.dumps(board["panels"])


def test_targets_up_does_not_count_on_demand_components_as_down() -> None:
    targets = panel("Targets up")
    on_demand = "|".join(dashboards.ON_DEMAND)
    always, sometimes = (t["expr"] for t in targets["targets"])
    assert f'component!~"{on_demand}"' in always
    assert f'component=~"{on_demand}"' in sometimes
    texts = {}
    for override in targets["fieldConfig"]["overrides"]:
        (mappings,) = [p["value"] for p in override["properties"] if p["id"] == "mappings"]
        texts[override["matcher"]["options"]] = mappings[0]["options"]["0"]
    assert texts["A"]["text"] == "down" and texts["A"]["color"] == "red"
    assert texts["B"]["text"] == "not running" and texts["B"]["color"] != "red"


def test_on_demand_components_are_the_ones_target_down_leaves_out() -> None:
    """Every scraped component either pages when down (TargetDown) or is run on demand."""
    expr = alert_rules()["TargetDown"]["expr"]
    (watched,) = re.findall(r'component=~"([^"]+)"', expr)
    watched_set = set(watched.split("|"))
    assert not watched_set & set(dashboards.ON_DEMAND)
    scraped = set(scrape_targets(Settings()))
    assert scraped <= watched_set | set(dashboards.ON_DEMAND), scraped - watched_set
