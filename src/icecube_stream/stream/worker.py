"""The worker's resources as a Faust service: the model client, the sinks, the pipeline and the
acknowledgement ledger, started with the app and stopped with it.

The agent waits for `ready` before it takes a message: Kafka or MongoDB down when the worker
starts is an outage like any other, waited out rather than met with messages no sink can finish.
Steps overlap (one waits on the model while another writes); the pipeline's bookkeeping changes
only between awaits, so it stays whole.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn

import faust

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.observe.lag import LagReader
from icecube_stream.stream.fence import Fence
from icecube_stream.stream.ledger import AckLedger
from icecube_stream.stream.messages import Incoming
from icecube_stream.stream.model_client import ModelClient
from icecube_stream.stream.pipeline import Pipeline
from icecube_stream.stream.sinks import Connected, PredictionSink
from icecube_stream.stream.sinks.alerts import KafkaAlerts
from icecube_stream.stream.sinks.dead_letters import DeadLetters
from icecube_stream.stream.sinks.kafka import KafkaPredictions
from icecube_stream.stream.sinks.mongo import MongoPredictions
from icecube_stream.wire.topics import PULSES

log = logging.getLogger(__name__)

EXIT_CRASH = 70  # EX_SOFTWARE
SINK_START_RETRY_S = 2.0
LAG_EVERY_S = 5.0

Ack = Callable[[Any], Awaitable[Any]]


def crash(error: BaseException) -> NoReturn:
    """Crash-only: an error the pipeline does not expect ends the process at once, non-zero,
    for the supervisor to restart it. Its messages were not acknowledged, so the next worker
    reads them again from the committed offsets; carrying on would leave them pending forever."""
    log.critical("worker stopping on an unexpected error (exit %d)", EXIT_CRASH, exc_info=error)
    logging.shutdown()
    os._exit(EXIT_CRASH)


class Worker(faust.Service):
    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.ledger = AckLedger()
        self.ready = asyncio.Event()
        self.model = ModelClient(settings)
        self.fence = Fence()
        self.sinks: list[PredictionSink] = [
            KafkaPredictions(settings),
            MongoPredictions(settings),
            KafkaAlerts(settings, self.fence),
        ]
        self.dead_letters = DeadLetters(settings)
        self.connected: list[Connected] = [*self.sinks, self.dead_letters]
        self.pipeline = Pipeline(settings, self.model, self.sinks, self.dead_letters, self.fence)
        self._lag: LagReader | None = None
        self._lag_task: asyncio.Future[None] | None = None
        self._lag_checked = float("-inf")
        self._slots = asyncio.Semaphore(settings.worker_concurrency)
        self._steps: set[asyncio.Task[None]] = set()
        self._ack: Ack | None = None  # the agent's stream's, once it handed a message over

    async def on_start(self) -> None:
        """Connect every sink, waiting out an outage; then the agent may take messages."""
        for sink in self.connected:
            while not self.should_stop:
                try:
                    await sink.start()
                    break
                except Exception as error:
                    log.warning(
                        "sinks not ready, retrying in %.0f s: %s", SINK_START_RETRY_S, error
                    )
                    await asyncio.sleep(SINK_START_RETRY_S)
        self.ready.set()

    async def on_stop(self) -> None:
        """Steps first, then the clients they write with: nothing unfinished is acknowledged,
        so what they held is read again by the next owner."""
        self.ready.clear()
        await self.cancel_steps()
        await self.model.close()
        for sink in self.connected:
            await sink.stop()

    async def submit(self, incoming: list[Incoming], ack: Ack) -> None:
        """Run a step beside the others, once fewer than worker_concurrency run."""
        self._ack = ack
        for message in incoming:
            self.ledger.taken(message.token, message.partition, message.offset)
        await self._slots.acquire()
        step = asyncio.ensure_future(self.run(incoming, ack))
        self._steps.add(step)
        step.add_done_callback(self._done)

    def _done(self, step: asyncio.Task[None]) -> None:
        self._steps.discard(step)
        self._slots.release()

    async def cancel_steps(self) -> None:
        steps = list(self._steps)
        for step in steps:
            step.cancel()
        await asyncio.gather(*steps, return_exceptions=True)

    async def run(self, incoming: list[Incoming], ack: Ack) -> None:
        """One step; acknowledges what it finished, in offset order per partition."""
        try:
            released = self.ledger.finish(await self.pipeline.step(incoming))
            metrics.WORKER_MESSAGES_HELD.set(self.ledger.held)
            for token in released:
                await ack(token)
        except Exception as error:
            crash(error)

    async def release_expired(self) -> None:
        """A step without messages: split events whose parts never came are finished, and the
        messages that held their parts are acknowledged through the stream like any other (an
        idle worker once crashed here, acknowledging them with a function that refused)."""
        if self._ack is not None:  # else nothing was ever taken, so nothing is held
            await self.run([], self._ack)

    def forget(self, partitions: Iterable[int] | None = None) -> None:
        """Forget unfinished messages of these partitions (all held when None): after a
        rebalance Faust delivers them again from the committed offsets."""
        held = self.pipeline.partitions | self.ledger.partitions
        lost = held if partitions is None else set(partitions)
        self.pipeline.revoke(lost)
        self.ledger.revoke(lost)

    def refresh_lag(self, partitions: list[int]) -> None:
        """Update the lag of these partitions off the event loop, at most every LAG_EVERY_S and
        never two at once: a slow or unreachable broker delays the figures, nothing else."""
        loop = asyncio.get_running_loop()
        if self._lag_task is not None and not self._lag_task.done():
            return
        if loop.time() - self._lag_checked < LAG_EVERY_S:
            return
        self._lag_checked = loop.time()
        self._lag_task = asyncio.ensure_future(self._update_lag(partitions))

    async def _update_lag(self, partitions: list[int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self._lag is None:
                self._lag = LagReader(self.settings)
            topic = self.settings.topic(PULSES)
            await loop.run_in_executor(None, self._lag.update, topic, partitions)
        except Exception as error:  # lag is diagnostics
            log.warning("consumer lag not updated: %s", error)
