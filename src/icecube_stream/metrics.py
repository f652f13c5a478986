"""Every Prometheus metric of icecube-stream, in one place.

Names follow `icecube_<component>_<what>_<unit>`; heartbeats are timestamps, so an alert can
tell a stopped component (stale timestamp) from an idle one. Each component has a registry of its
own, and its /metrics page serves only that one: a worker's page shows no model-server series,
and so on. The model server is the exception that needs help: see serving/metrics_page.py.
"""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from icecube_stream.wire.reasons import SERVER_REFUSALS, Reason


def _component_registry() -> CollectorRegistry:
    """A registry with the process and Python collectors the default registry has."""
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


EMITTER_REGISTRY = _component_registry()
WORKER_REGISTRY = _component_registry()
CHECKER_REGISTRY = _component_registry()
#: BentoML serves the model server's page from its multiprocess files, without process metrics.
MODEL_SERVER_REGISTRY = CollectorRegistry()

# Emitter: raw pulses into Kafka.
EMITTER_EVENTS = Counter(
    "icecube_emitter_events_total",
    "Events acknowledged by Kafka (acks=all).",
    registry=EMITTER_REGISTRY,
)
EMITTER_FRAMES = Counter(
    "icecube_emitter_frames_total", "Pulse frames acknowledged by Kafka.", registry=EMITTER_REGISTRY
)
EMITTER_BYTES = Counter(
    "icecube_emitter_bytes_total", "Bytes of acknowledged pulse frames.", registry=EMITTER_REGISTRY
)
EMITTER_FAILED = Counter(
    "icecube_emitter_failed_events_total",
    "Events whose frame Kafka did not acknowledge.",
    registry=EMITTER_REGISTRY,
)
EMITTER_LAST_EMIT = Gauge(
    "icecube_emitter_last_emit_timestamp_seconds",
    "When the emitter last produced a frame.",
    registry=EMITTER_REGISTRY,
)
EMITTER_HEARTBEAT = Gauge(
    "icecube_emitter_heartbeat_timestamp_seconds",
    "Set every second while the emitter runs.",
    registry=EMITTER_REGISTRY,
)

# Worker: frames in, events assembled, predictions out.
WORKER_FRAMES_IN = Counter(
    "icecube_worker_frames_total", "Pulse frames read from Kafka.", registry=WORKER_REGISTRY
)
WORKER_EVENTS_IN = Counter(
    "icecube_worker_events_assembled_total", "Events assembled whole.", registry=WORKER_REGISTRY
)
WORKER_EVENTS_PENDING = Gauge(
    "icecube_worker_events_pending",
    "Split events waiting for their remaining parts.",
    registry=WORKER_REGISTRY,
)
WORKER_EVENTS_IN_PROGRESS = Gauge(
    "icecube_worker_events_in_progress",
    "Events assembled but not yet written.",
    registry=WORKER_REGISTRY,
)
WORKER_EVENTS_OUT = Counter(
    "icecube_worker_predictions_total",
    "Predictions written to Kafka and MongoDB.",
    registry=WORKER_REGISTRY,
)
WORKER_INCOMPLETE = Counter(
    "icecube_worker_incomplete_events_total",
    "Split events predicted with parts missing.",
    registry=WORKER_REGISTRY,
)
WORKER_DLQ = Counter(
    "icecube_worker_dlq_total",
    "Messages or events sent to the dead-letter topic.",
    ["reason"],
    registry=WORKER_REGISTRY,
)
WORKER_MESSAGES_HELD = Gauge(
    "icecube_worker_messages_held",
    "Messages finished but not yet acknowledged: an earlier one of their partition is not.",
    registry=WORKER_REGISTRY,
)
WORKER_BAD_EMIT_TIME = Counter(
    "icecube_worker_bad_emit_time_events_total",
    "Events written whose emitted_at_ns was 0 or ahead of the worker's clock: not in latency.",
    registry=WORKER_REGISTRY,
)
WORKER_UNKNOWN_GEOMETRY = Counter(
    "icecube_worker_unknown_geometry_frames_total",
    "Frames without a geometry identity (first schema version), accepted as they are.",
    registry=WORKER_REGISTRY,
)
WORKER_LAST_PROCESSED = Gauge(
    "icecube_worker_last_processed_timestamp_seconds",
    "When the worker last wrote predictions.",
    registry=WORKER_REGISTRY,
)
WORKER_HEARTBEAT = Gauge(
    "icecube_worker_heartbeat_timestamp_seconds",
    "Set every few seconds while the worker runs.",
    registry=WORKER_REGISTRY,
)
WORKER_BATCH_EVENTS = Histogram(
    "icecube_worker_batch_events",
    "Events per worker step (one model round trip and one write).",
    buckets=(1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096),
    registry=WORKER_REGISTRY,
)
PIPELINE_LATENCY = Histogram(
    "icecube_pipeline_latency_seconds",
    "From the emitter producing an event's frame to its prediction being written.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=WORKER_REGISTRY,
)
ALERTS_SENT = Counter(
    "icecube_worker_alerts_total",
    "Alerts produced to the alerts topic (each event at most once).",
    registry=WORKER_REGISTRY,
)
ALERTS_ALREADY_SENT = Counter(
    "icecube_worker_alerts_already_sent_total",
    "Alerts of replayed events found already on the alerts topic, and not sent again.",
    registry=WORKER_REGISTRY,
)
ALERTS_REVOKED = Counter(
    "icecube_worker_alerts_revoked_total",
    "Alerts not sent because a rebalance took their events from this worker during the step "
    "(the next owner sends them).",
    registry=WORKER_REGISTRY,
)
ALERT_LATENCY = Histogram(
    "icecube_worker_alert_latency_seconds",
    "From the event's time (trigger, else emitter send time) to its alert acknowledged on the "
    "alerts topic.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60),
    registry=WORKER_REGISTRY,
)
MODEL_CALL_SECONDS = Histogram(
    "icecube_worker_model_call_seconds",
    "One HTTP call to the model server, answered or not.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=WORKER_REGISTRY,
)
MODEL_CALL_RETRIES = Counter(
    "icecube_worker_model_retries_total",
    "Model calls retried, by reason.",
    ["reason"],
    registry=WORKER_REGISTRY,
)
WORKER_WRITE_FAILURES = Counter(
    "icecube_worker_write_failures_total",
    "Failed writes (retried), by sink.",
    ["sink"],
    registry=WORKER_REGISTRY,
)
WORKER_CONSUMER_LAG = Gauge(
    "icecube_worker_consumer_lag_messages",
    "Messages of an assigned partition not yet committed (high watermark minus committed offset).",
    ["topic", "partition"],
    registry=WORKER_REGISTRY,
)
MONGO_WRITE_SECONDS = Histogram(
    "icecube_worker_mongo_write_seconds",
    "One bulk upsert of predictions into MongoDB.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=WORKER_REGISTRY,
)

# Model server (bento/service.py). BentoML runs it in Prometheus multiprocess mode, so gauges
# say how values of several worker processes combine.
MODEL_SERVER_INFERENCE_SECONDS = Histogram(
    "icecube_model_server_inference_seconds",
    "Features plus forward passes of one /predict request (excludes decoding and queueing).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=MODEL_SERVER_REGISTRY,
)
MODEL_SERVER_REQUEST_SECONDS = Histogram(
    "icecube_model_server_request_seconds",
    "One /predict request inside the service: decode, wait for the model, infer, encode.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=MODEL_SERVER_REGISTRY,
)
MODEL_SERVER_BATCH_EVENTS = Histogram(
    "icecube_model_server_batch_events",
    "Events per /predict request.",
    buckets=(1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096),
    registry=MODEL_SERVER_REGISTRY,
)
MODEL_SERVER_EVENTS = Counter(
    "icecube_model_server_events_total",
    "Events the model server returned a direction for.",
    registry=MODEL_SERVER_REGISTRY,
)
MODEL_SERVER_REJECTED = Counter(
    "icecube_model_server_rejected_requests_total",
    "/predict requests refused before inference, by reason (no token, bad input, not ready, "
    "too large).",
    ["reason"],
    registry=MODEL_SERVER_REGISTRY,
)
MODEL_SERVER_REFUSED_EVENTS = Counter(
    "icecube_model_server_refused_events_total",
    "Events refused by name in a /predict answer (the rest of the request served), by reason.",
    ["reason"],
    registry=MODEL_SERVER_REGISTRY,
)
MODEL_SERVER_RELOADS = Counter(
    "icecube_model_server_reloads_total",
    "Model (re)load attempts, by outcome (loaded, unchanged, failed).",
    ["outcome"],
    registry=MODEL_SERVER_REGISTRY,
)
MODEL_SERVER_MODEL_INFO = Gauge(
    "icecube_model_server_model_info",
    "1 for the model version being served, 0 for versions served before it.",
    ["model_name", "model_version"],
    multiprocess_mode="max",
    registry=MODEL_SERVER_REGISTRY,
)
MODEL_SERVER_READY = Gauge(
    "icecube_model_server_ready",
    "1 while a model is loaded and /predict answers, 0 while it answers 503.",
    multiprocess_mode="livemin",
    registry=MODEL_SERVER_REGISTRY,
)
MODEL_SERVER_UNCERTAINTY = Histogram(
    "icecube_model_server_angular_uncertainty_radians",
    "Predicted angular uncertainty (sigma of the vMF head) of every event served.",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.2),
    registry=MODEL_SERVER_REGISTRY,
)
MODEL_SERVER_HEARTBEAT = Gauge(
    "icecube_model_server_heartbeat_timestamp_seconds",
    "Set every few seconds while the model server process runs.",
    multiprocess_mode="max",
    registry=MODEL_SERVER_REGISTRY,
)

# Truth checker (`icecube-stream check-truth`): simulated or labelled data only, where the true
# direction of every event is known from the data set's meta file.
CHECKER_EVENTS = Counter(
    "icecube_checker_events_total",
    "Predictions compared with their event's true direction.",
    registry=CHECKER_REGISTRY,
)
CHECKER_UNKNOWN = Counter(
    "icecube_checker_unknown_events_total",
    "Predictions of events absent from the truth table.",
    registry=CHECKER_REGISTRY,
)
CHECKER_ANGULAR_ERROR = Histogram(
    "icecube_checker_angular_error_radians",
    "Angle between predicted and true direction, per event.",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.2),
    registry=CHECKER_REGISTRY,
)
CHECKER_MEAN_ERROR = Gauge(
    "icecube_checker_angular_error_mean_radians",
    "Running mean angular error over the most recent events (the competition metric).",
    registry=CHECKER_REGISTRY,
)
CHECKER_HEARTBEAT = Gauge(
    "icecube_checker_heartbeat_timestamp_seconds",
    "Set every second while the checker runs.",
    registry=CHECKER_REGISTRY,
)

# Label values known in advance are exported as 0 from the start, so a rate() over them is 0
# rather than "no data" before the first failure (Prometheus' advice on missing series).
WORKER_KNOWN_LABELS: dict[Counter, tuple[str, ...]] = {
    WORKER_DLQ: tuple(Reason),
    MODEL_CALL_RETRIES: ("429", "500", "503", "504", "ConnectError", "ReadTimeout"),
    WORKER_WRITE_FAILURES: ("model", "kafka", "mongo", "dlq"),
}
MODEL_SERVER_KNOWN_LABELS: dict[Counter, tuple[str, ...]] = {
    MODEL_SERVER_REJECTED: (
        *("pickle", "unauthorised", "not-ready", "too-large", "content-type", "empty-body"),
        *("split-event", "geometry-mismatch"),
    ),
    MODEL_SERVER_REFUSED_EVENTS: SERVER_REFUSALS,
    MODEL_SERVER_RELOADS: ("loaded", "unchanged", "failed"),
}


def init_known_labels(known: dict[Counter, tuple[str, ...]]) -> None:
    for counter, values in known.items():
        for value in values:
            counter.labels(value)
