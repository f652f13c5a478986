"""The Grafana dashboards, generated from this module into deploy/grafana/dashboards/.

Why code rather than hand-edited JSON: a dashboard export is ~1,000 lines of layout noise around
a few dozen PromQL queries. Here the queries are the whole source, the layout is computed, and a
unit test fails when the checked-in JSON and this module disagree. Regenerate with
`python -m icecube_stream.tools.dashboards`.

The dashboards import into any Grafana: every panel and query names its datasource through the
dashboard variable `${datasource}` (any Prometheus; by default the provisioned one, uid
`prometheus`), never a fixed uid. Runbook links start with the variable `${runbook}`, whose
default is RUNBOOK_BASE_URL. Every panel declares its unit; thresholds are drawn where an alert
or a known limit gives them a meaning.

Queries use fixed windows ([1m], [5m]) and no dashboard variables, so the test suite can run
every panel's query verbatim against a live Prometheus. Every selector names its `component`:
all processes share one metrics module, so only the owning component's series mean anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The uid of the datasource that deploy/grafana/provisioning provisions: the default value of
#: the `datasource` variable. Another Grafana picks one of its own Prometheus datasources.
PROVISIONED_DATASOURCE_UID = "prometheus"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: Where docs/operations.md is published: every runbook link is this plus #<alert name>. It is
#: the default of the dashboards' `runbook` variable, which an operator can point elsewhere.
RUNBOOK_BASE_URL = "docs/operations.md"
OUT_DIR = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "dashboards"

W = 'component="worker"'
M = 'component="model-server"'
E = 'component="emitter"'
C = 'component="checker"'
#: Scrape targets that run only on demand (a replay, a truth check): every other `component`
#: runs all the time, and alert TargetDown watches it. The blackbox exporter's probes (job
#: `probe`) are not targets of their own: their `up` says nothing about what they probe.
ON_DEMAND = ("emitter", "checker")
PROBE_JOB = "probe"

# Units (Grafana unit ids; `count:X` is a count scaled with K, Mil, ... followed by X).
SECONDS = "s"
RADIANS = "radian"
SHORT = "short"
RATIO = "percentunit"  # 0.0-1.0 shown as percent
BYTES_PER_S = "Bps"
REQUESTS_PER_S = "reqps"
EVENTS_PER_S = "count:events/s"
FRAMES_PER_S = "count:frames/s"
RECORDS_PER_S = "count:records/s"
RETRIES_PER_S = "count:retries/s"

#: The latency objective: alert PipelineLatencyHigh fires when p99 stays above it.
ALERT_LATENCY_OBJECTIVE_S = 2.0
LATENCY_OBJECTIVE_S = 5.0
GREY = "#8e8e8e"

Steps = tuple[tuple[float, str], ...]  # (value, colour) above the base colour
States = tuple[tuple[int, str, str], ...]  # (value, text, colour): value mappings


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False  # table panels: one value per series, now
    heatmap: bool = False  # cumulative buckets, drawn as a distribution
    unit: str | None = None  # this query's series only, where it differs from the panel's
    thresholds: Steps | None = None  # this query's series only
    states: States = ()  # this query's series only


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str
    kind: str = "timeseries"  # timeseries, stat, table, heatmap
    thresholds: Steps = ()
    threshold_style: str = "line+area"  # how a time series draws them: line, dashed, ...+area
    states: States = ()  # tables: of the value column only (labels such as "1" stay as they are)
    alerts: tuple[str, ...] = ()  # alerts watching this panel: each gets a runbook link
    width: int = 12
    height: int = 8


def quantiles(metric: str, selector: str, window: str = "1m") -> tuple[Query, ...]:
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{selector}}}[{window}])))",
            f"p{round(q * 100)}",
        )
        for q in (0.5, 0.9, 0.99)
    )


def distribution(metric: str, selector: str) -> tuple[Query, ...]:
    return (Query(f"sum by (le) (increase({metric}_bucket{{{selector}}}[1m]))", "{{le}}",
                  heatmap=True),)  # fmt: skip


def _any(values: tuple[str, ...]) -> str:
    return "|".join(values)


PIPELINE = [
    Panel(
        "Events in and out",
        "Events emitted (acknowledged by Kafka), assembled by the workers and predicted "
        "(written to Kafka and MongoDB). In steady state the three lines coincide.",
        (
            Query(f"sum(rate(icecube_emitter_events_total{{{E}}}[1m]))", "emitted"),
            Query(f"sum(rate(icecube_worker_events_assembled_total{{{W}}}[1m]))", "assembled"),
            Query(f"sum(rate(icecube_worker_predictions_total{{{W}}}[1m]))", "predicted"),
        ),
        unit=EVENTS_PER_S,
    ),
    Panel(
        "End-to-end latency",
        "From the emitter producing an event's frame to its prediction being written. "
        "Alert PipelineLatencyHigh: p99 above 5 s for 5 minutes (the red line and area: the "
        "latency objective).",
        quantiles("icecube_pipeline_latency_seconds", W),
        unit=SECONDS,
        thresholds=((LATENCY_OBJECTIVE_S, "red"),),
        alerts=("PipelineLatencyHigh",),
    ),
    Panel(
        "Neutrino alerts",
        "Alerts produced to icecube.alerts in the last hour; replayed events whose alert "
        "was found already sent and not sent again (nonzero only after a worker restart); "
        "alerts a rebalance took from a worker before the send, which the next owner sends "
        "(nonzero only after a rebalance). Docs: docs/alerts.md.",
        (
            Query(f"sum(increase(icecube_worker_alerts_total{{{W}}}[1h]))", "alerts per hour"),
            Query(
                f"sum(increase(icecube_worker_alerts_already_sent_total{{{W}}}[1h]))",
                "already sent, per hour",
            ),
            Query(
                f"sum(increase(icecube_worker_alerts_revoked_total{{{W}}}[1h]))",
                "handed to the next owner, per hour",
            ),
        ),
        unit=SHORT,
    ),
    Panel(
        "Trigger to alert latency",
        "From the event's time (the emitter's send time when the data carry no trigger time) "
        "to its alert acknowledged on icecube.alerts, sky map written. The red line: the 2 s "
        "objective at 2,700 Hz (IceCube's own alerts take 30-60 s). Alert NeutrinoAlertSlow: "
        "p99 over the last hour above 2 s.",
        quantiles("icecube_worker_alert_latency_seconds", W, "5m"),
        unit=SECONDS,
        thresholds=((ALERT_LATENCY_OBJECTIVE_S, "red"),),
        alerts=("NeutrinoAlertSlow",),
    ),
    Panel(
        "Consumer lag per partition",
        "Messages of icecube.pulses not yet committed by the workers (committed only once "
        "written). Alert ConsumerLagGrowing: above 100 (dashed line) and growing for 10 minutes.",
        (
            Query(
                f"sum by (topic, partition) (icecube_worker_consumer_lag_messages{{{W}}})",
                "{{topic}} p{{partition}}",
            ),
        ),
        unit=SHORT,
        thresholds=((100, "orange"),),
        threshold_style="dashed",
        alerts=("ConsumerLagGrowing",),
    ),
    Panel(
        "Dead letters by reason",
        "Messages or events sent to icecube.pulses.dlq. Any is an alert: DeadLetters, or "
        "GeometryMismatch for the reason geometry-mismatch.",
        (
            Query(
                f"sum by (reason) (rate(icecube_worker_dlq_total{{{W}}}[5m]))",
                "{{reason}}",
            ),
        ),
        unit=RECORDS_PER_S,
        alerts=("DeadLetters", "GeometryMismatch"),
    ),
    Panel(
        "Frames read and bytes emitted",
        "Pulse frames the workers read and the emitter wrote (left axis), and the bytes the "
        "emitter wrote to Kafka (right axis).",
        (
            Query(f"sum(rate(icecube_worker_frames_total{{{W}}}[1m]))", "frames read"),
            Query(f"sum(rate(icecube_emitter_frames_total{{{E}}}[1m]))", "frames emitted"),
            Query(
                f"sum(rate(icecube_emitter_bytes_total{{{E}}}[1m]))",
                "bytes emitted",
                unit=BYTES_PER_S,
            ),
        ),
        unit=FRAMES_PER_S,
    ),
    Panel(
        "Events waiting in the workers",
        "Split events waiting for parts, and assembled events not yet written.",
        (
            Query(f"sum(icecube_worker_events_pending{{{W}}})", "pending parts"),
            Query(f"sum(icecube_worker_events_in_progress{{{W}}})", "in progress"),
        ),
        unit=SHORT,
    ),
    Panel(
        "Failed writes and model calls (retried)",
        "Each failure is retried: nothing is dropped, but latency grows while it lasts.",
        (
            Query(
                f"sum by (sink) (rate(icecube_worker_write_failures_total{{{W}}}[5m]))",
                "{{sink}}",
            ),
        ),
        unit=RETRIES_PER_S,
    ),
    Panel(
        "MongoDB write latency",
        "One bulk insert of a step's predictions.",
        quantiles("icecube_worker_mongo_write_seconds", W, "5m"),
        unit=SECONDS,
    ),
    Panel(
        "Heartbeat age",
        "Seconds since each component's heartbeat; red where its alert fires: "
        "WorkerHeartbeatStale and ModelServerHeartbeatStale above 30 s, EmitterHeartbeatStale "
        "above 60 s. No value: no such process (the emitter runs only while replaying).",
        (
            Query(
                f"time() - max(icecube_emitter_heartbeat_timestamp_seconds{{{E}}})",
                "emitter",
                thresholds=((60, "red"),),
            ),
            Query(f"time() - max(icecube_worker_heartbeat_timestamp_seconds{{{W}}})", "worker"),
            Query(
                f"time() - max(icecube_model_server_heartbeat_timestamp_seconds{{{M}}})",
                "model server",
            ),
        ),
        kind="stat",
        unit=SECONDS,
        thresholds=((30, "red"),),
        alerts=("WorkerHeartbeatStale", "ModelServerHeartbeatStale", "EmitterHeartbeatStale"),
    ),
    Panel(
        "Targets up",
        "Whether Prometheus scraped each target's /metrics last time. The emitter and the "
        "truth checker run only on demand: not running (grey) is normal. Everything else runs "
        "all the time: down (red) is a failure, alert TargetDown.",
        (
            Query(
                "max by (component, instance) "
                f'(up{{job!="{PROBE_JOB}", component!="", component!~"{_any(ON_DEMAND)}"}})',
                "{{component}} {{instance}}",
                states=((0, "down", "red"), (1, "up", "green")),
            ),
            Query(
                f'max by (component, instance) (up{{component=~"{_any(ON_DEMAND)}"}})',
                "{{component}} {{instance}}",
                states=((0, "not running", GREY), (1, "running", "green")),
            ),
        ),
        kind="stat",
        unit=SHORT,
        alerts=("TargetDown",),
    ),
    Panel(
        "Alerts",
        "Alerts pending or firing now (Watchdog always fires: proof that rules are evaluated).",
        (Query("sum by (alertname, alertstate) (ALERTS)", instant=True),),
        kind="table",
        unit=SHORT,
        alerts=("Watchdog",),
        width=24,
    ),
]

MODEL = [
    Panel(
        "Model-call latency (worker side)",
        "One HTTP /predict call as the worker sees it, answered or not.",
        quantiles("icecube_worker_model_call_seconds", W),
        unit=SECONDS,
    ),
    Panel(
        "Model-call retries by reason",
        "429 overload, 503 not ready, 504 timeout, connection errors. Alert ModelCallErrors "
        "when more than 5 % of calls fail.",
        (
            Query(
                f"sum by (reason) (rate(icecube_worker_model_retries_total{{{W}}}[5m]))",
                "{{reason}}",
            ),
        ),
        unit=RETRIES_PER_S,
        alerts=("ModelCallErrors",),
    ),
    Panel(
        "Failed model calls",
        "Share of the workers' model calls that failed and were retried, over 5 minutes. Alert "
        "ModelCallErrors: above 5 % (the red line and area) for 5 minutes.",
        (
            Query(
                f"sum(rate(icecube_worker_model_retries_total{{{W}}}[5m])) / "
                f"sum(rate(icecube_worker_model_call_seconds_count{{{W}}}[5m]))",
                "failed share",
            ),
        ),
        unit=RATIO,
        thresholds=((0.05, "red"),),
        alerts=("ModelCallErrors",),
    ),
    Panel(
        "Inference latency (model server)",
        "Features plus forward passes of one request; excludes decoding and queueing.",
        quantiles("icecube_model_server_inference_seconds", M),
        unit=SECONDS,
    ),
    Panel(
        "Request latency (model server)",
        "One /predict inside the service: decode, wait for the model, infer, encode.",
        quantiles("icecube_model_server_request_seconds", M),
        unit=SECONDS,
    ),
    Panel(
        "Batch sizes",
        "Events per worker step and per model-server request (median).",
        (
            Query(
                "histogram_quantile(0.5, sum by (le) "
                f"(rate(icecube_worker_batch_events_bucket{{{W}}}[5m])))",
                "worker step",
            ),
            Query(
                "histogram_quantile(0.5, sum by (le) "
                f"(rate(icecube_model_server_batch_events_bucket{{{M}}}[5m])))",
                "model request",
            ),
        ),
        unit=SHORT,
    ),
    Panel(
        "Events served and requests refused",
        "Directions returned per second, and /predict requests refused by reason (right axis).",
        (
            Query(f"sum(rate(icecube_model_server_events_total{{{M}}}[1m]))", "events served"),
            Query(
                f"sum by (reason) (rate(icecube_model_server_rejected_requests_total{{{M}}}[5m]))",
                "refused {{reason}}",
                unit=REQUESTS_PER_S,
            ),
        ),
        unit=EVENTS_PER_S,
    ),
    Panel(
        "Model versions",
        "The version each model server serves and versions it served before.",
        (
            Query(
                "max by (instance, model_name, model_version) "
                f"(icecube_model_server_model_info{{{M}}})",
                instant=True,
            ),
        ),
        kind="table",
        unit=SHORT,
        states=((0, "served before", GREY), (1, "serving", "green")),
    ),
    Panel(
        "Ready and reloads",
        "1 while a model is loaded (0: alert ModelServerNotReady); reloads by outcome.",
        (
            Query(f"min by (instance) (icecube_model_server_ready{{{M}}})", "ready {{instance}}"),
            Query(
                f"sum by (outcome) (increase(icecube_model_server_reloads_total{{{M}}}[5m]))",
                "reload {{outcome}}",
            ),
        ),
        unit=SHORT,
        alerts=("ModelServerNotReady",),
    ),
    Panel(
        "Predicted angular uncertainty",
        "Distribution of the model's 1-sigma uncertainty (radians) over the events served.",
        distribution("icecube_model_server_angular_uncertainty_radians", M),
        kind="heatmap",
        unit=RADIANS,
    ),
    Panel(
        "Angular error vs truth (simulated data)",
        "Angle between prediction and true direction, from `icecube-stream check-truth` "
        "(only while replaying a data set with truth). Random guessing gives pi/2 = 1.571.",
        distribution("icecube_checker_angular_error_radians", C),
        kind="heatmap",
        unit=RADIANS,
    ),
    Panel(
        "Running mean angular error",
        "Mean over the latest 1,000 checked events (the competition's metric), and the median "
        "uncertainty the model claims for comparison. Dashed line: pi/2, random guessing.",
        (
            Query(f"max(icecube_checker_angular_error_mean_radians{{{C}}})", "mean error"),
            Query(
                "histogram_quantile(0.5, sum by (le) (rate("
                f"icecube_model_server_angular_uncertainty_radians_bucket{{{M}}}[5m])))",
                "median uncertainty",
            ),
        ),
        unit=RADIANS,
        thresholds=((round(math.pi / 2, 3), "red"),),
        threshold_style="dashed",
    ),
]

DASHBOARDS = {
    "pipeline": ("icecube-pipeline", "icecube-stream: pipeline overview", PIPELINE),
    "model": ("icecube-model", "icecube-stream: model", MODEL),
}


def _thresholds(steps: Steps, base: str) -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}]
        + [{"color": color, "value": value} for value, color in steps],
    }


def _mappings(states: States) -> list[dict[str, Any]]:
    options = {
        str(value): {"text": text, "color": color, "index": i}
        for i, (value, text, color) in enumerate(states)
    }
    return [{"type": "value", "options": options}]


def _overrides(query: Query, ref: str, base: str) -> list[dict[str, Any]]:
    """Field overrides of one query's series (matched by its refId)."""
    properties: list[dict[str, Any]] = []
    if query.unit is not None:
        properties.append({"id": "unit", "value": query.unit})
        properties.append({"id": "custom.axisPlacement", "value": "right"})
    if query.thresholds is not None:
        properties.append({"id": "thresholds", "value": _thresholds(query.thresholds, base)})
    if query.states:
        properties.append({"id": "mappings", "value": _mappings(query.states)})
    if not properties:
        return []
    return [{"matcher": {"id": "byFrameRefID", "options": ref}, "properties": properties}]


def runbook_link(alert: str) -> dict[str, Any]:
    """A panel link to the alert's section of docs/operations.md (anchor: its name, lowered)."""
    return {
        "title": f"Runbook: {alert}",
        "url": f"${{runbook}}#{alert.lower()}",
        "targetBlank": True,
    }


def _target(query: Query, ref: str) -> dict[str, Any]:
    target: dict[str, Any] = {"refId": ref, "datasource": DATASOURCE, "expr": query.expr}
    if query.legend:
        target["legendFormat"] = query.legend
    if query.instant:
        target |= {"instant": True, "range": False, "format": "table"}
    if query.heatmap:
        target["format"] = "heatmap"
    return target


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    # A time series shades nothing below its lowest threshold; a stat is green there.
    base = "transparent" if panel.kind == "timeseries" else "green"
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": _thresholds(panel.thresholds, base),
    }
    if panel.kind == "timeseries" and panel.thresholds:
        defaults["custom"] = {"thresholdsStyle": {"mode": panel.threshold_style}}
    refs = [chr(ord("A") + i) for i in range(len(panel.queries))]
    overrides = [o for q, ref in zip(panel.queries, refs, strict=True)
                 for o in _overrides(q, ref, base)]  # fmt: skip
    if panel.states:
        mappings = {"id": "mappings", "value": _mappings(panel.states)}
        overrides.append(
            {"matcher": {"id": "byName", "options": "Value"}, "properties": [mappings]}
        )
    options: dict[str, Any] = {}
    if panel.kind == "timeseries":
        options = {"legend": {"displayMode": "list", "placement": "bottom"},
                   "tooltip": {"mode": "multi"}}  # fmt: skip
    elif panel.kind == "stat":
        options = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background",
                   "textMode": "value_and_name"}  # fmt: skip
    elif panel.kind == "heatmap":
        options = {"calculate": False, "yAxis": {"unit": panel.unit}, "cellGap": 1}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": options,
        "links": [runbook_link(alert) for alert in panel.alerts],
        "targets": [_target(q, ref) for q, ref in zip(panel.queries, refs, strict=True)],
    }


def _templating() -> list[dict[str, Any]]:
    """The datasource (any Prometheus) and the runbook base URL, both chosen per Grafana."""
    return [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {"text": "Prometheus", "value": PROVISIONED_DATASOURCE_UID},
            "options": [],
            "regex": "",
            "refresh": 1,
            "hide": 0,
            "includeAll": False,
            "multi": False,
        },
        {
            "name": "runbook",
            "label": "Runbooks",
            "description": "Where docs/operations.md is published; panel links add #<alert>.",
            "type": "textbox",
            "query": RUNBOOK_BASE_URL,
            "current": {"text": RUNBOOK_BASE_URL, "value": RUNBOOK_BASE_URL},
            "options": [{"selected": True, "text": RUNBOOK_BASE_URL, "value": RUNBOOK_BASE_URL}],
            "hide": 0,
        },
    ]


def _links(uid: str) -> list[dict[str, Any]]:
    """A link to each other dashboard, by uid, keeping the time range and the variables."""
    return [
        {
            "title": title,
            "type": "link",
            "url": f"/d/{other}",
            "icon": "dashboard",
            "tooltip": f"Open {title}",
            "keepTime": True,
            "includeVars": True,
            "targetBlank": False,
            "asDropdown": False,
            "tags": [],
        }
        for other, title, _ in DASHBOARDS.values()
        if other != uid
    ]


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    """Panels flow left to right in a 24-column grid, a new row when one does not fit."""
    laid_out = []
    x = y = row_height = 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append(_panel(panel, panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": uid,
        "title": title,
        "tags": ["icecube-stream"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "templating": {"list": _templating()},
        "links": _links(uid),
        "panels": laid_out,
    }


def render() -> dict[str, str]:
    """file name -> JSON text of every dashboard."""
    return {
        f"{name}.json": json.dumps(dashboard(uid, title, panels), indent=2) + "\n"
        for name, (uid, title, panels) in DASHBOARDS.items()
    }


def write(out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        (out_dir / name).write_text(text)
        written.append(out_dir / name)
    return written


if __name__ == "__main__":
    for path in write():
        print(path)
