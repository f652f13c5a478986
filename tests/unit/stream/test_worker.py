"""The worker service: sinks connected before any message, steps stopped before the clients,
messages finished by the idle timer's step acknowledged through the stream."""

import asyncio

import pytest

from icecube_stream.config import Settings
from icecube_stream.stream import worker as worker_module
from icecube_stream.stream.messages import Incoming
from icecube_stream.stream.worker import Worker

pytestmark = pytest.mark.unit


class Client:
    def __init__(self, name: str, log: list[str], failures: int = 0) -> None:
        self.name, self.log, self.failures = name, log, failures

    async def start(self) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError(f"{self.name} down")
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


async def _ack(token: object) -> None:
    pass


def test_an_outage_at_start_is_waited_out_before_ready(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(worker_module, "SINK_START_RETRY_S", 0.0)

    async def main() -> list[str]:
        log: list[str] = []
        worker = Worker(Settings())
        worker.connected = [Client("kafka", log), Client("mongo", log, failures=3)]
        await worker.on_start()
        assert worker.ready.is_set()
        return log

    assert asyncio.run(main()) == ["start kafka", "start mongo"]


def test_stopping_cancels_the_steps_before_closing_their_clients() -> None:
    async def main() -> list[str]:
        log: list[str] = []
        worker = Worker(Settings())
        worker.connected = [Client("kafka", log), Client("dlq", log)]

        async def step(incoming: list[Incoming], ack: object) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                log.append("step cancelled")
                raise

        worker.run = step  # type: ignore[method-assign]
        await worker.on_start()
        await worker.submit([Incoming("m0", "t", 0, 0, None, b"")], _ack)
        await asyncio.sleep(0)
        await worker.on_stop()
        assert not worker.ready.is_set()
        return log

    assert asyncio.run(main()) == [
        "start kafka", "start dlq", "step cancelled", "stop kafka", "stop dlq"
    ]  # fmt: skip


def test_messages_finished_by_a_step_without_messages_are_acknowledged_through_the_stream() -> None:
    """The timer's empty step releases a split event whose other parts never came: the message
    that held its part is acknowledged like any other, instead of crashing the worker."""

    async def main() -> list[object]:
        worker = Worker(Settings())
        finished: list[list[object]] = [[], ["m0"]]  # the part is held, then released

        async def step(incoming: list[Incoming]) -> list[object]:
            return finished.pop(0)

        worker.pipeline.step = step  # type: ignore[method-assign,assignment]
        acked: list[object] = []

        async def ack(token: object) -> None:
            acked.append(token)

        await worker.release_expired()  # nothing taken yet: no step at all
        await worker.submit([Incoming("m0", "t", 0, 0, None, b"")], ack)
        await asyncio.gather(*worker._steps)
        assert acked == []
        await worker.release_expired()
        return acked

    assert asyncio.run(main()) == ["m0"]
