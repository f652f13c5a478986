"""Every poison message through the real worker step (model and sinks recorded): each ends in
the dead-letter topic once with its reason, or predicted, as the corpus says."""

import asyncio
import time
from collections import Counter

import pytest
from test_pipeline import RecordingModel, RecordingSinks

from icecube_stream.config import Settings
from icecube_stream.stream.messages import Incoming
from icecube_stream.stream.pipeline import Pipeline
from icecube_stream.tools.poison import INCOMPLETE, PREDICTED, corpus

pytestmark = pytest.mark.unit


def test_each_poison_ends_once_as_the_corpus_says(make_batch, frame_codec) -> None:  # type: ignore[no-untyped-def]
    timeout_s = 0.2
    settings = Settings(assembly_timeout_s=timeout_s)
    poisons = corpus(make_batch([40, 3, 5, 2]), frame_codec, 10**9, 1 << 20, timeout_s)
    assert len({p.kind for p in poisons}) >= 25
    sinks = RecordingSinks()
    pipeline = Pipeline(settings, RecordingModel(), sinks.destinations, sinks)
    acked = []
    for offset, poison in enumerate(poisons):
        if poison.after_s:  # what the worker's timer does meanwhile: release timed-out events
            time.sleep(timeout_s)
            acked += asyncio.run(pipeline.step([]))
        message = Incoming(f"m{offset}", "t", poison.partition, offset, poison.key(offset),
                           poison.value)  # fmt: skip
        acked += asyncio.run(pipeline.step([message]))
    time.sleep(timeout_s)
    acked += asyncio.run(pipeline.step([]))  # what waits for the timeout is released

    assert sorted(acked) == sorted(f"m{k}" for k in range(len(poisons)))  # none left pending
    dead = Counter(offset for offset, _, _ in sinks.dead)
    assert all(count == 1 for count in dead.values()), dead
    reasons = {offset: reason for offset, reason, _ in sinks.dead}
    for offset, poison in enumerate(poisons):
        if poison.expected in (PREDICTED, INCOMPLETE):
            assert offset not in reasons, (poison.kind, reasons.get(offset))
        else:
            assert reasons.get(offset) == poison.expected, poison.kind
    flags = {p["event_id"]: p["flags"] for p in sinks.predictions}
    for poison in poisons:
        for event_id in poison.event_ids:
            wanted = ["incomplete"] if poison.expected == INCOMPLETE else []
            assert flags.get(event_id) == wanted, poison.kind
