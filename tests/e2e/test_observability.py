"""Dashboards and alerts against the live Prometheus, fed by a private pipeline under load.

The `pipeline` fixture's worker and model server, plus an emitter and a truth checker run in
this process, are registered with the stack's Prometheus through extra file_sd target files
(labelled with their component and this run's tag). After events flow, every panel query of the
provisioned dashboards must return a number and every selector of every alert rule must match
live series. Then the model server is stopped and its alert must become active.

The shipped rules wait minutes (`for: 2m`) before firing; to see one fire within the test, a
copy of alerts.yml with every `for:` cut to 10 s (and a `rules: short-window-test` label) is
loaded from rules.d/ for the duration. The shipped rule itself must at least be pending.
"""

import json
import math
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import start_http_server

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.observe import checker
from icecube_stream.physics.angles import angles_to_vector
from icecube_stream.stack import manager
from icecube_stream.stack.prometheus import Prometheus
from icecube_stream.stream import emitter
from icecube_stream.tools.dashboards import OUT_DIR as DASHBOARDS_DIR
from support import wait_for

pytestmark = pytest.mark.e2e

N = 3000
RATE_HZ = 150.0  # 20 s of traffic: several scrapes see the counters move
ALERTS_FILE = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
SELECTOR = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\}")


def query(settings: Settings, promql: str) -> list[dict[str, Any]]:
    """Result of an instant query; fails the test when Prometheus refuses (does not parse)."""
    response = httpx.get(f"{settings.prometheus_url}/api/v1/query", params={"query": promql})
    body = response.json()
    assert body.get("status") == "success", f"{promql!r}: {body.get('error')}"
    return list(body["data"]["result"])


def mine(metric: str, component: str, tag: str) -> str:
    """A selector of this run's series of one component (every process exports every metric)."""
    return f'{metric}{{component="{component}", test_run="{tag}"}}'


def has_number(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result if "value" in r)


def reload(settings: Settings) -> None:
    httpx.post(f"{settings.prometheus_url}/-/reload", timeout=30).raise_for_status()


def rule_groups(settings: Settings) -> set[str]:
    body = httpx.get(f"{settings.prometheus_url}/api/v1/rules").json()
    return {g["name"] for g in body["data"]["groups"]}


def panel_queries() -> list[tuple[str, str]]:
    """(dashboard/panel, expr) of every target of every provisioned dashboard."""
    found = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                found.append((f"{path.stem}/{panel['title']}", target["expr"]))
    assert len(found) > 20
    return found


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@pytest.fixture(scope="module")
def monitored(stack: Settings, pipeline: Settings) -> Iterator[dict[str, Any]]:
    """The pipeline's processes, an in-process emitter and checker, scraped by Prometheus."""
    prometheus = Prometheus(stack)
    prometheus.prepare()  # the checked-in config and rules, even into an older running stack
    reload(stack)
    wait_for(lambda: "icecube-model" in rule_groups(stack), 30, "alerts.yml loaded")

    tag = uuid.uuid4().hex[:8]
    servers = [
        start_http_server(0, addr="127.0.0.1", registry=registry)
        for registry in (metrics.EMITTER_REGISTRY, metrics.CHECKER_REGISTRY)
    ]
    addresses = {
        "worker": f"{pipeline.host}:{pipeline.worker_web_port}",
        "model-server": f"{pipeline.host}:{pipeline.model_server_port}",
        "emitter": f"127.0.0.1:{servers[0][0].server_port}",
        "checker": f"127.0.0.1:{servers[1][0].server_port}",
    }
    targets = prometheus.config_dir / "targets"
    files = []
    for component, address in addresses.items():
        path = targets / f"obs-{tag}-{component}.json"
        labels = {"component": component, "test_run": tag}
        path.write_text(json.dumps([{"targets": [address], "labels": labels}]))
        files.append(path)
    try:
        wait_for(
            lambda: (
                has_number(found := query(stack, f'count(up{{test_run="{tag}"}} == 1)'))
                and float(found[0]["value"][1]) == len(addresses)
            ),
            90,
            "Prometheus scraping the worker, model server, emitter and checker of this test",
        )
        yield {"tag": tag, "addresses": addresses, "prometheus": prometheus}
    finally:
        for path in files:
            path.unlink(missing_ok=True)
        for server, thread in servers:
            server.shutdown()
            thread.join()


def test_every_panel_and_alert_selector_has_live_data(
    stack: Settings, pipeline: Settings, events: EventBatch, monitored: dict[str, Any]
) -> None:
    batch = take_events(events, 0, N)
    assert batch.azimuth is not None and batch.zenith is not None
    truth = dict(
        zip(batch.event_id.tolist(), angles_to_vector(batch.azimuth, batch.zenith), strict=True)
    )
    check = checker.TruthChecker(truth)
    stop = threading.Event()
    reader = threading.Thread(target=checker.run, args=(pipeline, check, stop), daemon=True)
    reader.start()
    try:
        report = emitter.emit(pipeline, [("obs", batch)], rate_hz=RATE_HZ)
        assert report.ok and report.events == N
        tag = monitored["tag"]
        predicted = f"sum({mine('icecube_worker_predictions_total', 'worker', tag)})"
        wait_for(
            lambda: has_number(r := query(stack, predicted)) and float(r[0]["value"][1]) >= N,
            180,
            f"Prometheus seeing {N} predictions of this test's worker",
        )
        wait_for(lambda: len(check.recent) >= 1000, 60, "the checker comparing predictions")
    finally:
        stop.set()
        reader.join(timeout=10)

    # Every dashboard query parses and returns a number (NaN, e.g. a quantile of no traffic,
    # does not count), polled because the last scrapes may still be on their way.
    queries = panel_queries()
    deadline = time.monotonic() + 60
    while missing := queries_without_data(stack, queries):
        assert time.monotonic() < deadline, "panels without data:\n" + "\n".join(missing)
        time.sleep(2)

    # Figures that must be right, not merely present.
    tag = monitored["tag"]
    latency = mine("icecube_pipeline_latency_seconds_bucket", "worker", tag)
    p99 = query(stack, f"histogram_quantile(0.99, sum by (le) (rate({latency}[2m])))")
    assert 0 < float(p99[0]["value"][1]) < 60
    mean_error = query(
        stack,
        mine("icecube_checker_angular_error_mean_radians", "checker", tag),
    )
    assert 0.05 < float(mean_error[0]["value"][1]) < math.pi
    assert check.mean_error == pytest.approx(float(mean_error[0]["value"][1]), rel=0.2)
    versions = query(stack, mine("icecube_model_server_model_info", "model-server", tag) + " == 1")
    assert [v["metric"]["model_name"] for v in versions] == [pipeline.model_name]
    lag = query(stack, mine("icecube_worker_consumer_lag_messages", "worker", tag))
    assert lag, "no consumer lag series for the worker's partitions"

    # Alert rules: each expression parses, and each series it selects exists.
    rules = alert_rules()
    groups = httpx.get(f"{stack.prometheus_url}/api/v1/rules", timeout=10).json()["data"]
    loaded = {rule["name"] for group in groups["groups"] for rule in group["rules"]}
    assert {rule["alert"] for rule in rules} <= loaded, "Prometheus has not loaded alerts.yml"
    absent = []
    for rule in rules:
        query(stack, rule["expr"])
        for selector in SELECTOR.findall(rule["expr"]):
            if not query(stack, f"count({selector})"):
                absent.append(f"{rule['alert']}: {selector}")
    assert not absent, f"alert selectors matching no live series: {absent}"
    watchdog = query(stack, 'ALERTS{alertname="Watchdog", alertstate="firing"}')
    assert watchdog, "the Watchdog is not firing: rules are not evaluated"


def queries_without_data(stack: Settings, queries: list[tuple[str, str]]) -> list[str]:
    return [f"{where}: {expr}" for where, expr in queries if not has_number(query(stack, expr))]


def short_window_rules(tag: str) -> str:
    """alerts.yml with every `for:` cut to 10 s, in groups and under a label of this test."""
    document = yaml.safe_load(ALERTS_FILE.read_text())
    for group in document["groups"]:
        group["name"] = f"{group['name']}-test-{tag}"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "10s"
            rule["labels"] = {**rule.get("labels", {}), "rules": "short-window-test"}
    return yaml.safe_dump(document, sort_keys=False)


def test_stopping_the_model_server_raises_its_alert(
    stack: Settings, pipeline: Settings, events: EventBatch, monitored: dict[str, Any]
) -> None:
    tag = monitored["tag"]
    rules_dir: Path = monitored["prometheus"].config_dir / "rules.d"
    rules_dir.mkdir(exist_ok=True)
    rules_file = rules_dir / f"test-{tag}.yml"
    rules_file.write_text(short_window_rules(tag))
    instance = monitored["addresses"]["model-server"]
    try:
        reload(stack)
        wait_for(lambda: f"icecube-model-test-{tag}" in rule_groups(stack), 30, "test rules")
        assert not model_server_alerts(stack, instance), "alert active before the stop"

        manager.down(pipeline, ["model-server"], report=lambda _: None)
        # Events for the worker to hold and retry while the model server is away.
        assert emitter.emit(pipeline, [("obs", take_events(events, N, N + 200))]).ok

        def firing_short_and_shipped_active() -> bool:
            alerts = model_server_alerts(stack, instance)
            short = [a for a in alerts if a["labels"].get("rules") == "short-window-test"]
            shipped = [a for a in alerts if "rules" not in a["labels"]]
            return any(a["state"] == "firing" for a in short) and bool(shipped)

        # 5 s scrape + 5 s evaluation + 10 s `for`, with room for a busy machine.
        wait_for(firing_short_and_shipped_active, 90, "ModelServerNotReady firing")
        shipped = [a for a in model_server_alerts(stack, instance) if "rules" not in a["labels"]]
        assert shipped[0]["state"] in {"pending", "firing"}
        assert shipped[0]["annotations"]["summary"] == (
            f"Model server {instance} is not serving predictions"
        )

        # The worker retries (the input of ModelCallErrors) and its heartbeat stays fresh: the
        # outage is the model server's, not a blocked worker (no WorkerHeartbeatStale).
        retries = f"sum({mine('icecube_worker_model_retries_total', 'worker', tag)})"
        wait_for(lambda: float(query(stack, retries)[0]["value"][1]) >= 3, 60, "model retries")
        age = f"time() - {mine('icecube_worker_heartbeat_timestamp_seconds', 'worker', tag)}"
        assert float(query(stack, age)[0]["value"][1]) < 12
    finally:
        rules_file.unlink(missing_ok=True)
        reload(stack)


def model_server_alerts(stack: Settings, instance: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{stack.prometheus_url}/api/v1/alerts").json()
    return [
        a
        for a in body["data"]["alerts"]
        if a["labels"].get("alertname") == "ModelServerNotReady"
        and a["labels"].get("instance") == instance
    ]
