"""The fence: a step sends only while nothing was revoked since it began, and a revocation
waits for a send in progress."""

import asyncio

import pytest

from icecube_stream.stream.fence import Fence

pytestmark = pytest.mark.unit


def test_a_step_begun_before_a_revocation_may_not_send() -> None:
    async def run() -> list[bool]:
        fence = Fence()
        before = fence.generation
        async with fence.holding(before) as held:
            first = held
        await fence.close()
        async with fence.holding(before) as held:
            stale = held
        async with fence.holding(fence.generation) as held:
            fresh = held
        return [first, stale, fresh]

    assert asyncio.run(run()) == [True, False, True]


def test_a_revocation_waits_for_the_send_in_progress() -> None:
    async def run() -> list[str]:
        fence = Fence()
        happened: list[str] = []
        sending = asyncio.Event()

        async def send() -> None:
            async with fence.holding(0) as held:
                assert held
                sending.set()
                await asyncio.sleep(0.05)
                happened.append("sent")

        step = asyncio.create_task(send())
        await sending.wait()
        await fence.close()
        happened.append("revoked")
        await step
        return happened

    assert asyncio.run(run()) == ["sent", "revoked"]
