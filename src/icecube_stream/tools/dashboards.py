"""The Grafana dashboards, generated from this module into deploy/grafana/dashboards/.

Why code rather than hand-edited JSON: a dashboard export is ~1,000 lines of layout noise around
a few dozen PromQL queries. Here the queries are the whole source, the layout is computed, every
panel uses the same provisioned datasource uid, and a unit test fails when the checked-in JSON
and this module disagree. Regenerate with `python -m icecube_stream.tools.dashboards`.

Queries use fixed windows ([1m], [5m]) and no dashboard variables, so the test suite can run
every panel's query verbatim against a live Prometheus. Every selector names its `component`:
all processes share one metrics module, so only the owning component's series mean anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
OUT_DIR = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "dashboards"

W = 'component="worker"'
M = 'component="model-server"'
E = 'component="emitter"'
C = 'component="checker"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False  # table panels: one value per series, now
    heatmap: bool = False  # cumulative buckets, drawn as a distribution


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # timeseries, stat, table, heatmap
    unit: str = "short"
    width: int = 12
    height: int = 8
    options: dict[str, Any] = field(default_factory=dict)


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
        unit="ops",
    ),
    Panel(
        "End-to-end latency",
        "From the emitter producing an event's frame to its prediction being written. "
        "Alert PipelineLatencyHigh: p99 above 5 s for 5 minutes.",
        quantiles("icecube_pipeline_latency_seconds", W),
        unit="s",
    ),
    Panel(
        "Consumer lag per partition",
        "Messages of icecube.pulses not yet committed by the workers (committed only once "
        "written). Alert ConsumerLagGrowing: above 100 and growing for 10 minutes.",
        (
            Query(
                f"sum by (topic, partition) (icecube_worker_consumer_lag_messages{{{W}}})",
                "{{topic}} p{{partition}}",
            ),
        ),
    ),
    Panel(
        "Dead letters by reason",
        "Messages or events sent to icecube.pulses.dlq. Any is an alert (DeadLetters).",
        (
            Query(
                f"sum by (reason) (rate(icecube_worker_dlq_total{{{W}}}[5m]))",
                "{{reason}}",
            ),
        ),
        unit="ops",
    ),
    Panel(
        "Frames read and bytes emitted",
        "Pulse frames the workers read, and the bytes the emitter wrote to Kafka.",
        (
            Query(f"sum(rate(icecube_worker_frames_total{{{W}}}[1m]))", "frames read/s"),
            Query(f"sum(rate(icecube_emitter_frames_total{{{E}}}[1m]))", "frames emitted/s"),
        ),
        unit="ops",
    ),
    Panel(
        "Events waiting in the workers",
        "Split events waiting for parts, and assembled events not yet written.",
        (
            Query(f"sum(icecube_worker_events_pending{{{W}}})", "pending parts"),
            Query(f"sum(icecube_worker_events_in_progress{{{W}}})", "in progress"),
        ),
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
        unit="ops",
    ),
    Panel(
        "MongoDB write latency",
        "One bulk insert of a step's predictions.",
        quantiles("icecube_worker_mongo_write_seconds", W, "5m"),
        unit="s",
    ),
    Panel(
        "Heartbeat age",
        "Seconds since each component's heartbeat. Alerts: *HeartbeatStale (30 s; emitter 60 s).",
        (
            Query(f"time() - max(icecube_emitter_heartbeat_timestamp_seconds{{{E}}})", "emitter"),
            Query(f"time() - max(icecube_worker_heartbeat_timestamp_seconds{{{W}}})", "worker"),
            Query(
                f"time() - max(icecube_model_server_heartbeat_timestamp_seconds{{{M}}})",
                "model server",
            ),
        ),
        kind="stat",
        unit="s",
        options={"thresholds": [30, 60]},
    ),
    Panel(
        "Targets up",
        "1 when Prometheus scraped the component's /metrics last time. Alert TargetDown.",
        (Query("sum by (component) (up)", "{{component}}"),),
        kind="stat",
    ),
    Panel(
        "Alerts",
        "Alerts pending or firing now (Watchdog always fires: proof that rules are evaluated).",
        (Query("sum by (alertname, alertstate) (ALERTS)", instant=True),),
        kind="table",
        width=24,
    ),
]

MODEL = [
    Panel(
        "Model-call latency (worker side)",
        "One HTTP /predict call as the worker sees it, answered or not.",
        quantiles("icecube_worker_model_call_seconds", W),
        unit="s",
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
        unit="ops",
    ),
    Panel(
        "Inference latency (model server)",
        "Features plus forward passes of one request; excludes decoding and queueing.",
        quantiles("icecube_model_server_inference_seconds", M),
        unit="s",
    ),
    Panel(
        "Request latency (model server)",
        "One /predict inside the service: decode, wait for the model, infer, encode.",
        quantiles("icecube_model_server_request_seconds", M),
        unit="s",
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
    ),
    Panel(
        "Events served and requests refused",
        "Directions returned per second, and /predict requests refused by reason.",
        (
            Query(f"sum(rate(icecube_model_server_events_total{{{M}}}[1m]))", "events/s"),
            Query(
                f"sum by (reason) (rate(icecube_model_server_rejected_requests_total{{{M}}}[5m]))",
                "refused {{reason}}",
            ),
        ),
        unit="ops",
    ),
    Panel(
        "Model versions",
        "The version each model server serves (1) and versions it served before (0).",
        (
            Query(
                "max by (instance, model_name, model_version) "
                f"(icecube_model_server_model_info{{{M}}})",
                instant=True,
            ),
        ),
        kind="table",
    ),
    Panel(
        "Ready and reloads",
        "1 while a model is loaded (alert ModelServerNotReady); reloads by outcome.",
        (
            Query(f"min by (instance) (icecube_model_server_ready{{{M}}})", "ready {{instance}}"),
            Query(
                f"sum by (outcome) (increase(icecube_model_server_reloads_total{{{M}}}[5m]))",
                "reload {{outcome}}",
            ),
        ),
    ),
    Panel(
        "Predicted angular uncertainty",
        "Distribution of the model's 1-sigma uncertainty (radians) over the events served.",
        distribution("icecube_model_server_angular_uncertainty_radians", M),
        kind="heatmap",
    ),
    Panel(
        "Angular error vs truth (simulated data)",
        "Angle between prediction and true direction, from `icecube-stream check-truth` "
        "(only while replaying a data set with truth). Random guessing gives pi/2 = 1.571.",
        distribution("icecube_checker_angular_error_radians", C),
        kind="heatmap",
    ),
    Panel(
        "Running mean angular error",
        "Mean over the latest 1,000 checked events (the competition's metric), and the median "
        "uncertainty the model claims for comparison.",
        (
            Query(f"max(icecube_checker_angular_error_mean_radians{{{C}}})", "mean error"),
            Query(
                "histogram_quantile(0.5, sum by (le) (rate("
                f"icecube_model_server_angular_uncertainty_radians_bucket{{{M}}}[5m])))",
                "median uncertainty",
            ),
        ),
        unit="rad",
        width=24,
    ),
]

DASHBOARDS = {
    "pipeline": ("icecube-pipeline", "icecube-stream: pipeline overview", PIPELINE),
    "model": ("icecube-model", "icecube-stream: model", MODEL),
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
    defaults: dict[str, Any] = {"unit": panel.unit}
    if "thresholds" in panel.options:
        steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
        for color, value in zip(("orange", "red"), panel.options["thresholds"], strict=False):
            steps.append({"color": color, "value": value})
        defaults["thresholds"] = {"mode": "absolute", "steps": steps}
    options: dict[str, Any] = {}
    if panel.kind == "timeseries":
        options = {"legend": {"displayMode": "list", "placement": "bottom"},
                   "tooltip": {"mode": "multi"}}  # fmt: skip
    elif panel.kind == "stat":
        options = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}
    elif panel.kind == "heatmap":
        options = {"calculate": False, "yAxis": {"unit": "rad"}, "cellGap": 1}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [_target(q, chr(ord("A") + i)) for i, q in enumerate(panel.queries)],
    }


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
        "templating": {"list": []},
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
