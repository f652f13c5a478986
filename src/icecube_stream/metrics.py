"""Every Prometheus metric of icecube-stream, in one place.

Names follow `icecube_<component>_<what>_<unit>`; heartbeats are timestamps, so an alert can
tell a stopped component (stale timestamp) from an idle one.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

# Emitter: raw pulses into Kafka.
EMITTER_EVENTS = Counter("icecube_emitter_events_total", "Events acknowledged by Kafka (acks=all).")
EMITTER_FRAMES = Counter("icecube_emitter_frames_total", "Pulse frames acknowledged by Kafka.")
EMITTER_BYTES = Counter("icecube_emitter_bytes_total", "Bytes of acknowledged pulse frames.")
EMITTER_FAILED = Counter(
    "icecube_emitter_failed_events_total", "Events whose frame Kafka did not acknowledge."
)
EMITTER_LAST_EMIT = Gauge(
    "icecube_emitter_last_emit_timestamp_seconds", "When the emitter last produced a frame."
)
EMITTER_HEARTBEAT = Gauge(
    "icecube_emitter_heartbeat_timestamp_seconds", "Set every second while the emitter runs."
)
