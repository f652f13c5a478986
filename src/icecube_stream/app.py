"""The Faust worker: `faust -A icecube_stream.app worker -l info` (or `icecube-stream worker`).

Faust supplies the consumer group, partition assignment, offset commits and the web server;
the work itself is `stream.pipeline.Pipeline`. Messages are taken without automatic acks and
acknowledged only when the pipeline says every event in them is written or dead-lettered, and
only in offset order per partition (`stream.ledger`), so a worker killed at any moment replays,
and never loses, what it had not finished. One reader takes messages from the stream, in order,
and runs up to `worker_concurrency` steps at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, NoReturn

import faust
from prometheus_client import generate_latest

from icecube_stream import metrics
from icecube_stream.config import get_settings
from icecube_stream.observe.lag import LagReader
from icecube_stream.stream.ledger import AckLedger
from icecube_stream.stream.model_client import ModelClient
from icecube_stream.stream.pipeline import Pipeline
from icecube_stream.stream.sinks import Incoming, Sinks
from icecube_stream.stream.topics import require_topics, sized_for
from icecube_stream.wire.topics import DLQ, PREDICTIONS, PULSES, topic_specs

log = logging.getLogger(__name__)
settings = get_settings()
EXIT_CRASH = 70  # EX_SOFTWARE
SINK_START_RETRY_S = 2.0
metrics.init_known_labels(metrics.WORKER_KNOWN_LABELS)
LAG_EVERY_S = 5.0

app = faust.App(
    settings.worker_app_id,
    broker=f"kafka://{settings.kafka_bootstrap}",
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


class _Worker:
    """The one pipeline of this process, shared by the agent and the timer."""

    pipeline: Pipeline | None = None
    ledger = AckLedger()
    ack: Any = None
    lag: LagReader | None = None
    lag_checked = 0.0
    lag_task: asyncio.Future[None] | None = None

    async def run(self, incoming: list[Incoming]) -> None:
        """One step. Steps overlap (one waits on the model while another writes); the
        pipeline's bookkeeping changes only between awaits, so it stays whole."""
        assert self.pipeline is not None
        try:
            released = self.ledger.finish(await self.pipeline.step(incoming))
            metrics.WORKER_MESSAGES_HELD.set(self.ledger.held)
            for token in released:
                await self.ack(token)
        except Exception as error:
            crash(error)


def crash(error: BaseException) -> NoReturn:
    """Crash-only: an error the pipeline does not expect ends the process at once, non-zero,
    for the supervisor to restart it. Its messages were not acknowledged, so the next worker
    reads them again from the committed offsets; carrying on would leave them pending forever."""
    log.critical("worker stopping on an unexpected error (exit %d)", EXIT_CRASH, exc_info=error)
    logging.shutdown()
    os._exit(EXIT_CRASH)


worker = _Worker()


@app.agent(pulses)  # one reader, so the ledger sees each partition's messages in offset order
async def reconstruct(stream: Any) -> None:  # a faust.Stream; StreamT lacks noack_take
    require_topics(settings, PREDICTIONS, DLQ)
    sinks = Sinks(settings)
    await start_sinks(sinks)
    pipeline = worker.pipeline = Pipeline(settings, ModelClient(settings), sinks)
    worker.ack = stream.ack
    slots = asyncio.Semaphore(settings.worker_concurrency)
    steps: set[asyncio.Task[None]] = set()

    def done(step: asyncio.Task[None]) -> None:
        steps.discard(step)
        slots.release()

    try:
        batches = stream.noack_take(settings.worker_take_messages, settings.worker_take_within_s)
        async for events in batches:
            # Taken before a rebalance, handed out after it: Faust reads those partitions
            # again from the committed offsets, so these copies are not ours to process.
            current = app.consumer_generation_id
            incoming = [_incoming(e) for e in events if e.message.generation_id == current]
            for message in incoming:
                worker.ledger.taken(message.token, message.partition, message.offset)
            await slots.acquire()
            step = asyncio.ensure_future(worker.run(incoming))
            steps.add(step)
            step.add_done_callback(done)
    except Exception as error:
        crash(error)
    finally:
        for step in list(steps):
            step.cancel()
        worker.pipeline = None
        await pipeline.model.close()
        await sinks.stop()


async def start_sinks(sinks: Sinks) -> None:
    """Kafka or MongoDB down when the worker starts is an outage like any other: wait for it
    before taking a single message, rather than take messages no sink can finish."""
    while True:
        try:
            await sinks.start()
            return
        except Exception as error:
            log.warning("sinks not ready, retrying in %.0f s: %s", SINK_START_RETRY_S, error)
            await asyncio.sleep(SINK_START_RETRY_S)


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
    if worker.pipeline is not None:
        await worker.run([])


@app.timer(interval=1.0)  # type: ignore[untyped-decorator]
async def heartbeat() -> None:
    """Proof that the event loop runs. A timer of its own: `tick` waits for its step, which
    retries a dependency that is down for as long as the outage lasts, and that outage has
    alerts of its own (ModelServerNotReady, latency, lag)."""
    metrics.WORKER_HEARTBEAT.set_to_current_time()
    loop = asyncio.get_running_loop()
    # Not awaited: a slow or unreachable broker must delay the lag figures, not the heartbeat.
    if (worker.lag_task is None or worker.lag_task.done()) and (
        loop.time() - worker.lag_checked >= LAG_EVERY_S
    ):
        worker.lag_checked = loop.time()
        worker.lag_task = asyncio.ensure_future(_update_lag())


async def _update_lag() -> None:
    """Lag of the partitions this worker holds, read off the event loop."""
    loop = asyncio.get_running_loop()
    topic = settings.topic(PULSES)
    try:
        held = [tp.partition for tp in app.consumer.assignment() if tp.topic == topic]
        if worker.lag is None:
            worker.lag = LagReader(settings)
        await loop.run_in_executor(None, worker.lag.update, topic, held)
    except Exception as error:  # lag is diagnostics: never let it stop the heartbeat
        log.warning("consumer lag not updated: %s", error)


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def on_revoked(app: faust.App, revoked: set[Any], **_: Any) -> None:
    """After any rebalance Faust reads every partition it assigns again from the committed
    offset, so every unfinished message is delivered anew: forget them all, kept or not, and
    commit what is finished first so that as little as possible is read twice."""
    if worker.pipeline is not None:
        try:
            await app.consumer.commit()
        except Exception as error:  # a commit that fails here only means more is read again
            log.warning("commit before the rebalance failed: %s", error)
        held = worker.pipeline.partitions | worker.ledger.partitions
        worker.pipeline.revoke(held)
        worker.ledger.revoke(held)


@app.page("/metrics")
async def metrics_page(web: Any, request: Any) -> Any:
    # Prometheus' text format; aiohttp wants the charset outside the content type.
    return web.bytes(generate_latest(), content_type="text/plain; version=0.0.4")


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
