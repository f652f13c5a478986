"""The Faust worker: `faust -A icecube_stream.app worker -l info` (or `icecube-stream worker`).

Faust supplies the consumer group, partition assignment, offset commits and the web server;
the work itself is `stream.pipeline.Pipeline`, run by the `stream.worker.Worker` service. Messages
are taken without automatic acks and acknowledged only when the pipeline says every event in them
is written or dead-lettered, and only in offset order per partition (`stream.ledger`), so a worker
killed at any moment replays, and never loses, what it had not finished. One reader takes
messages from the stream, in order, and runs up to `worker_concurrency` steps at once. This module
only wires the app, its agent, timers and pages.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from prometheus_client import generate_latest

from icecube_stream import metrics
from icecube_stream.config import get_settings
from icecube_stream.connections import faust_credentials
from icecube_stream.stream.messages import Incoming
from icecube_stream.stream.topics import require_topics, sized_for
from icecube_stream.stream.worker import Worker, crash
from icecube_stream.wire.topics import DLQ, PREDICTIONS, PULSES, topic_specs

log = logging.getLogger(__name__)
settings = get_settings()
metrics.init_known_labels(metrics.WORKER_KNOWN_LABELS)

app = faust.App(
    settings.worker_app_id,
    broker=f"kafka://{settings.kafka_bootstrap}",
    broker_credentials=faust_credentials(settings),
    store="memory://",
    datadir=str(settings.state_dir / "worker"),
    web_host=settings.host,
    web_bind=settings.host,
    web_port=settings.worker_web_port,
    consumer_auto_offset_reset="earliest",
    broker_commit_interval=1.0,
    # A worker killed without a goodbye holds its partitions until this runs out.
    broker_session_timeout=10.0,
    broker_heartbeat_interval=2.0,
    # A request to a broker cut off (not dead) hangs until this runs out, heartbeats and
    # commits to the group coordinator included: at Faust's 90 s the group stood still that
    # long after a 30 s partition. At 20 s the consumer finds the new leaders and coordinator
    # the controller chose (it fences an unreachable node after 9 s); a rebalance waits at
    # most 15 s for members, so the broker answers a join before the request gives up.
    broker_request_timeout=20.0,
    broker_rebalance_timeout=15.0,
    # aiokafka looks up a partition's start offset (ListOffsets) at the leader its metadata
    # names and, answered "not leader", retries every 100 ms without refreshing that metadata:
    # after a partition healed, a worker whose metadata came from the returning node stalled
    # until the periodic refresh, 5 minutes by default. Refreshing every 10 s bounds the stall.
    consumer_metadata_max_age_ms=10_000,
    # A rebalance or shutdown must not wait for unfinished messages to be acknowledged: during
    # a model server outage that is never, and a split event's held parts wait for parts the
    # paused consumer will not deliver. Unfinished messages are simply not committed, and the
    # partition's next owner reads them again (on_revoked forgets them here).
    stream_wait_empty=False,
    topic_replication_factor=min(3, settings.kafka_brokers),  # the topics Faust makes itself
)
# Declared as topics/topics.yaml says, in case Faust creates it before `topics apply` ran.
_spec = sized_for(topic_specs(settings.topics_dir)[PULSES], settings.kafka_brokers)
pulses = app.topic(
    settings.topic(PULSES),
    partitions=_spec.partitions,
    replicas=_spec.replication_factor,
    config=_spec.config,
    key_serializer="raw",
    value_serializer="raw",
)


worker = Worker(settings)
app.service(worker)  # type: ignore[arg-type]  # an instance: started with the app, not a class


@app.agent(pulses)  # one reader, so the ledger sees each partition's messages in offset order
async def reconstruct(stream: Any) -> None:  # a faust.Stream; StreamT lacks noack_take
    require_topics(settings, PREDICTIONS, DLQ)
    await worker.ready.wait()
    try:
        batches = stream.noack_take(settings.worker_take_messages, settings.worker_take_within_s)
        async for events in batches:
            # Taken before a rebalance, handed out after it: Faust reads those partitions
            # again from the committed offsets, so these copies are not ours to process.
            current = app.consumer_generation_id
            incoming = [_incoming(e) for e in events if e.message.generation_id == current]
            await worker.submit(incoming, stream.ack)  # registered in offset order
    except Exception as error:
        crash(error)
    finally:
        await worker.cancel_steps()


def _incoming(event: Any) -> Incoming:
    message = event.message
    return Incoming(
        token=event,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value or b"",  # a tombstone (null value) is refused like any non-frame
    )


@app.timer(interval=1.0)  # type: ignore[untyped-decorator]
async def tick() -> None:
    """Release split events whose parts never came, even when input is idle."""
    if worker.ready.is_set():
        await worker.release_expired()


@app.timer(interval=1.0)  # type: ignore[untyped-decorator]
async def heartbeat() -> None:
    """Proof that the event loop runs. A timer of its own: `tick` waits for its step, which
    retries a dependency that is down for as long as the outage lasts, and that outage has
    alerts of its own (ModelServerNotReady, latency, lag)."""
    metrics.WORKER_HEARTBEAT.set_to_current_time()
    topic = settings.topic(PULSES)
    try:
        held = [tp.partition for tp in app.consumer.assignment() if tp.topic == topic]
    except Exception as error:  # lag is diagnostics: never let it stop the heartbeat
        log.warning("consumer lag not updated: %s", error)
        return
    worker.refresh_lag(held)


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def on_revoked(app: faust.App, revoked: set[Any], **_: Any) -> None:
    """After any rebalance Faust reads every partition it assigns again from the committed
    offset, so every unfinished message is delivered anew: forget them all, kept or not, and
    commit what is finished first so that as little as possible is read twice. The fence
    closes first: an alert being sent is out before the next owner can take its event, and
    steps begun before now send none (stream/fence.py)."""
    if worker.ready.is_set():
        await worker.fence.close()
        try:
            await app.consumer.commit()
        except Exception as error:  # a commit that fails here only means more is read again
            log.warning("commit before the rebalance failed: %s", error)
        worker.forget()


@app.page("/metrics")
async def metrics_page(web: Any, request: Any) -> Any:
    # Prometheus' text format; aiohttp wants the charset outside the content type.
    return web.bytes(
        generate_latest(metrics.WORKER_REGISTRY), content_type="text/plain; version=0.0.4"
    )


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
