"""The emitter: a data set's events into `icecube.pulses`, as frames, at a controlled rate.

Producer guarantees: acks=all and idempotence, so a retried send never duplicates a frame; every
delivery report is counted, and the caller learns how many events were not acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.connections import confluent_config
from icecube_stream.events.batch import EventBatch
from icecube_stream.events.dataset import EventDataset
from icecube_stream.stream.framing import frames_from_batch
from icecube_stream.wire.frame import PulseFrame, encode_frame
from icecube_stream.wire.topics import PULSES, topic_codec, topic_specs

FLUSH_TIMEOUT_S = 60.0


@dataclass
class EmitReport:
    events: int = 0
    frames: int = 0
    bytes: int = 0
    failed_events: int = 0
    unacknowledged_frames: int = 0
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.failed_events == 0 and self.unacknowledged_frames == 0


def pace_until(deadline: float) -> None:
    """Sleep until time.monotonic() reaches deadline, beating the heartbeat at least every
    second, so a slow rate does not look like a stopped emitter."""
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))
        metrics.EMITTER_HEARTBEAT.set_to_current_time()


def completed_events(frame: PulseFrame) -> int:
    """Events a frame finishes: whole events, plus a split event on its last part."""
    return int((frame.part == frame.n_parts - 1).sum())


class FrameProducer:
    def __init__(self, settings: Settings, report: EmitReport) -> None:
        self.topic = settings.topic(PULSES)
        self.codec = topic_codec(PULSES, settings.topics_dir)
        self.report = report
        self.producer = Producer(
            confluent_config(settings)
            | {
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "request.timeout.ms": 10_000,  # see sinks.py: a broker cut off moves on at 10 s
                "compression.type": "lz4",
                "message.max.bytes": int(
                    topic_specs(settings.topics_dir)[PULSES].config.get(
                        "max.message.bytes", 1_000_000
                    )
                ),
            }
        )

    def send(self, frame: PulseFrame, on_delivered: Callable[[bool], None] | None = None) -> None:
        """Produce one frame; on_delivered(acknowledged) runs from a later poll or flush."""
        data = encode_frame(frame.stamped(time.time_ns()), self.codec)
        events = completed_events(frame)

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is None:
                self.report.events += events
                self.report.frames += 1
                self.report.bytes += len(data)
                metrics.EMITTER_EVENTS.inc(events)
                metrics.EMITTER_FRAMES.inc()
                metrics.EMITTER_BYTES.inc(len(data))
            else:
                self.report.failed_events += events
                metrics.EMITTER_FAILED.inc(events)
            if on_delivered is not None:
                on_delivered(error is None)

        while True:
            try:
                self.producer.produce(self.topic, value=data, key=frame.key, on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self.producer.poll(0.05)
        self.producer.poll(0)
        metrics.EMITTER_LAST_EMIT.set_to_current_time()

    def poll(self) -> None:
        self.producer.poll(0)

    def flush(self) -> int:
        """Wait for outstanding deliveries; the number of frames still unacknowledged."""
        return int(self.producer.flush(FLUSH_TIMEOUT_S))


def emit(
    settings: Settings,
    batches: Iterable[tuple[str, EventBatch]],
    rate_hz: float | None = None,
    on_progress: Callable[[EmitReport, int], None] | None = None,
) -> EmitReport:
    """Send (source, batch) pairs as frames; with rate_hz, events leave at that average rate."""
    report = EmitReport()
    producer = FrameProducer(settings, report)
    start = time.monotonic()
    sent = 0
    heartbeat = 0.0
    for source, batch in batches:
        frames = frames_from_batch(
            batch, source, settings.frame_max_events, settings.frame_max_pulses
        )
        for frame in frames:
            if rate_hz:
                pace_until(start + sent / rate_hz)
            producer.send(frame)
            sent += completed_events(frame)
            now = time.monotonic()
            if now - heartbeat >= 1.0:
                heartbeat = now
                metrics.EMITTER_HEARTBEAT.set_to_current_time()
                if on_progress:
                    on_progress(report, sent)
    report.unacknowledged_frames = producer.flush()
    report.seconds = time.monotonic() - start
    if on_progress:
        on_progress(report, sent)
    return report


def dataset_batches(
    dataset: EventDataset, limit: int | None = None, loop: bool = False
) -> Iterator[tuple[str, EventBatch]]:
    """(source, batch) chunks of a data set, in order; with loop, again from the start."""
    remaining = limit
    while remaining is None or remaining > 0:
        produced = 0
        for batch in dataset.iter_batches(max_events=remaining):
            produced += batch.n_events
            yield dataset.root.name, batch
        if remaining is not None:
            remaining -= produced
        if not loop or produced == 0:
            return
