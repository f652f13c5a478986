"""The worker step's delivery logic, with the model and the sinks replaced by recorders."""

import asyncio
import logging
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.events.geometry import from_positions, icecube_geometry
from icecube_stream.stream.framing import frames_from_batch
from icecube_stream.stream.messages import Incoming, Rejection
from icecube_stream.stream.model_client import GeometryRejectedError
from icecube_stream.stream.pipeline import Pipeline
from icecube_stream.stream.sinks import FatalKafkaError
from icecube_stream.wire.codec import AvroCodec
from icecube_stream.wire.frame import PulseFrame, encode_frame
from icecube_stream.wire.model_api import GeometryRejection, PredictionBatch
from icecube_stream.wire.validation import Problem

pytestmark = pytest.mark.unit


class RecordingModel:
    def __init__(self, refuse: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.refuse = refuse
        self.calls: list[list[int]] = []

    async def predict(self, frame: PulseFrame) -> PredictionBatch:
        ids = frame.event_id.tolist()
        self.calls.append(ids)
        assert (frame.n_parts == 1).all(), "the model takes whole events"
        assert len(set(ids)) == len(ids), "an event id twice in one request"
        geometry = frame.geometry_id
        if geometry not in (None, icecube_geometry().identity):
            raise GeometryRejectedError(
                "409: geometry-mismatch", GeometryRejection(geometry, "the-model's")
            )
        refused = tuple(Problem(-1, e, "non-finite-output", f"event {e}") for e in ids
                        if e in self.refuse)  # fmt: skip
        served = [e for e in ids if e not in self.refuse]
        n = len(served)
        return PredictionBatch("m", "1", np.array(served), np.zeros(n), np.zeros(n),
                           np.tile([0.0, 0.0, 1.0], (n, 1)), np.full(n, 0.1), refused)  # fmt: skip


class RecordingSink:
    """One destination of predictions; the first `failures[name]` writes fail."""

    def __init__(self, name: str, into: list[dict[str, Any]], failures: dict[str, int]) -> None:
        self.name = name
        self.into = into
        self.failures = failures
        self.generations: list[int] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def write(self, records: list[dict[str, Any]], generation: int) -> None:
        self.generations.append(generation)
        if self.failures.get(self.name, 0) > 0:
            self.failures[self.name] -= 1
            raise ConnectionError(f"{self.name} is down")
        self.into += records


class RecordingSinks:
    """Records every write: predictions (the Kafka sink), mongo, and dead letters."""

    def __init__(self) -> None:
        self.predictions: list[dict[str, Any]] = []
        self.mongo: list[dict[str, Any]] = []
        self.dead: list[tuple[int, str, tuple[int, ...]]] = []
        self.headers: list[dict[str, str]] = []
        self.failures: dict[str, int] = {}
        self.fatal: Exception | None = None
        self.destinations = [
            RecordingSink("kafka", self.predictions, self.failures),
            RecordingSink("mongo", self.mongo, self.failures),
        ]

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def dead_letter(self, message: Incoming, rejections: list[Rejection]) -> None:
        if self.fatal is not None:
            raise self.fatal
        reasons = ",".join(dict.fromkeys(r.reason for r in rejections))
        ids = tuple(r.event_id for r in rejections if r.event_id is not None)
        self.dead.append((message.offset, reasons, ids))
        self.headers.append({k: v for r in rejections for k, v in r.headers})


@pytest.fixture
def run(frame_codec: AvroCodec):  # type: ignore[no-untyped-def]
    model, sinks = RecordingModel(), RecordingSinks()
    pipeline = Pipeline(Settings(model_batch_events=4), model, sinks.destinations, sinks)
    offsets = iter(range(10_000))

    def message(frame_or_bytes: Any, partition: int = 0) -> Incoming:
        value = (
            frame_or_bytes
            if isinstance(frame_or_bytes, bytes)
            else encode_frame(frame_or_bytes, frame_codec)
        )
        offset = next(offsets)
        return Incoming(token=f"m{offset}", topic="t", partition=partition, offset=offset,
                        key=None, value=value)  # fmt: skip

    def step(*messages: Incoming) -> list[Any]:
        return asyncio.run(pipeline.step(list(messages)))

    return pipeline, model, sinks, message, step


def test_whole_events_are_predicted_and_their_messages_acked(run, make_batch) -> None:  # type: ignore[no-untyped-def]
    pipeline, model, sinks, message, step = run
    frames = list(frames_from_batch(make_batch([3, 4, 5, 6, 7]), "b", 2, 100))
    messages = [message(f) for f in frames]
    assert step(*messages) == [m.token for m in messages]
    assert sorted(p["event_id"] for p in sinks.predictions) == [1000, 1001, 1002, 1003, 1004]
    assert all(len(call) <= 4 for call in model.calls)  # model_batch_events
    assert pipeline.outstanding == {}


def test_split_event_messages_wait_for_the_last_part(run, make_batch) -> None:  # type: ignore[no-untyped-def]
    _, _, sinks, message, step = run
    frames = list(frames_from_batch(make_batch([2, 250]), "b", 10, 100))
    first, *parts = [message(f) for f in frames]
    assert step(first, parts[0]) == [first.token]
    assert step(parts[2]) == []
    duplicate = message(frames[1])  # the same part again, in a message of its own
    assert step(duplicate) == [duplicate.token]  # dropped, so that message is done
    assert sorted(step(parts[1])) == sorted([parts[0].token, parts[1].token, parts[2].token])
    (split,) = [p for p in sinks.predictions if p["event_id"] == 1001]
    assert split["n_pulses"] == 250
    assert split["flags"] == []


def test_garbage_goes_to_the_dlq_and_is_acked(run, make_batch) -> None:  # type: ignore[no-untyped-def]
    _, _, sinks, message, step = run
    bad = message(b"\x80\x04\x95 not avro")
    good = message(next(frames_from_batch(make_batch([3]), "b", 10, 100)))
    assert step(bad, good) == [bad.token, good.token]
    assert sinks.dead == [(bad.offset, "not-avro", ())]
    assert [p["event_id"] for p in sinks.predictions] == [1000]


def test_one_invalid_event_is_dead_lettered_and_the_rest_predicted(run, make_batch) -> None:  # type: ignore[no-untyped-def]
    _, _, sinks, message, step = run
    batch = make_batch([3, 4, 5, 2])
    batch.sensor_id[3] = 9999  # first pulse of event 1001
    batch.charge[7] = np.nan  # a pulse of event 1002
    batch.sensor_id[13] = -1  # a pulse of event 1003
    m = message(next(frames_from_batch(batch, "b", 10, 100)))
    assert step(m) == [m.token]
    # One record for the message, with every reason and every refused event.
    assert sinks.dead == [(m.offset, "unknown-sensor,non-finite", (1001, 1002, 1003))]
    assert [p["event_id"] for p in sinks.predictions] == [1000]


def test_an_event_the_model_refuses_does_not_take_its_batch_down(run, make_batch) -> None:  # type: ignore[no-untyped-def]
    _, model, sinks, message, step = run
    model.refuse = {1002}
    m = message(next(frames_from_batch(make_batch([3, 3, 3, 3]), "b", 10, 100)))
    assert step(m) == [m.token]
    assert sinks.dead == [(m.offset, "non-finite-output", (1002,))]
    assert sorted(p["event_id"] for p in sinks.predictions) == [1000, 1001, 1003]


def test_incomplete_events_are_released_after_the_timeout(frame_codec, make_batch) -> None:  # type: ignore[no-untyped-def]
    sinks = RecordingSinks()
    pipeline = Pipeline(
        Settings(assembly_timeout_s=0.0), RecordingModel(), sinks.destinations, sinks
    )
    frames = list(frames_from_batch(make_batch([250]), "b", 10, 100))
    m = Incoming("m0", "t", 0, 0, None, encode_frame(frames[0], frame_codec))
    assert asyncio.run(pipeline.step([m])) == ["m0"]
    (prediction,) = sinks.predictions
    assert prediction["flags"] == ["incomplete"]
    assert prediction["n_pulses"] == 100


def test_revoked_partitions_forget_their_pending_parts(run, make_batch) -> None:  # type: ignore[no-untyped-def]
    pipeline, _, _, message, step = run
    frames = list(frames_from_batch(make_batch([250]), "b", 10, 100))
    step(message(frames[0], partition=2))
    assert pipeline.outstanding
    pipeline.revoke([2])
    assert pipeline.outstanding == {}
    assert pipeline.messages == {}
    assert 2 not in pipeline.assemblers


def test_sinks_learn_the_fence_generation_the_step_began_under(run, make_batch) -> None:  # type: ignore[no-untyped-def]
    """A rebalance during the model call: the sinks are told the step began before it, so the
    alert sink sends nothing for events the worker no longer holds."""
    pipeline, model, sinks, message, step = run
    answer = model.predict

    async def predict_during_a_rebalance(frame: PulseFrame) -> PredictionBatch:
        await pipeline.fence.close()
        return await answer(frame)

    model.predict = predict_during_a_rebalance
    step(message(next(frames_from_batch(make_batch([3, 4]), "b", 2, 100))))
    assert pipeline.fence.generation == 1
    assert [sink.generations for sink in sinks.destinations] == [[0], [0]]


def test_frames_of_another_detector_are_dead_lettered_once_each_with_both_geometries(
    run, make_batch
) -> None:  # type: ignore[no-untyped-def]
    pipeline, model, sinks, message, step = run
    batch = make_batch([3] * 9)
    shifted = from_positions(batch.geometry.positions + np.array([1.0, 0.0, 0.0]))
    frames = list(frames_from_batch(replace(batch, geometry=shifted), "b", 3, 100))
    messages = [message(f) for f in frames]
    # model_batch_events is 4: requests straddle frames, yet each frame gets one record.
    assert sorted(step(*messages)) == sorted(m.token for m in messages)
    assert [len(c) for c in model.calls] == [4, 4, 1]
    assert sorted(offset for offset, _, _ in sinks.dead) == [m.offset for m in messages]
    assert [ids for _, _, ids in sinks.dead] == [(1000, 1001, 1002), (1003, 1004, 1005),
                                                 (1006, 1007, 1008)]  # fmt: skip
    assert {reason for _, reason, _ in sinks.dead} == {"geometry-mismatch"}
    assert all(
        h == {"dlq.frame_geometry": shifted.identity, "dlq.model_geometry": "the-model's"}
        for h in sinks.headers
    )
    assert sinks.predictions == []
    assert pipeline.outstanding == {} and pipeline.rejections == {}


def test_old_schema_frames_are_predicted_counted_and_warned_about_once_per_source(
    run, make_batch, frame_codec, caplog
) -> None:  # type: ignore[no-untyped-def]
    _, _, sinks, message, step = run
    frames = list(frames_from_batch(make_batch([3, 3, 3, 3]), "old-emitter", 2, 100))
    old = [
        frame_codec.encode_as(1, {k: v for k, v in _record(f, frame_codec).items()
                                  if k != "geometry_id"})
        for f in frames
    ]  # fmt: skip
    before = metrics.WORKER_UNKNOWN_GEOMETRY._value.get()
    with caplog.at_level(logging.WARNING):
        step(*(message(data) for data in old))
    assert sorted(p["event_id"] for p in sinks.predictions) == [1000, 1001, 1002, 1003]
    assert metrics.WORKER_UNKNOWN_GEOMETRY._value.get() - before == len(frames)
    warnings = [r for r in caplog.records if "no geometry identity" in r.getMessage()]
    assert len(warnings) == 1 and "old-emitter" in warnings[0].getMessage()


def _record(frame, codec):  # type: ignore[no-untyped-def]
    """The Avro record of a frame as the current schema writes it."""
    return codec.decode(encode_frame(frame, codec))


def test_two_parts_of_one_split_event_in_one_frame_finish_the_message(
    run, make_batch, frame_codec
) -> None:  # type: ignore[no-untyped-def]
    """No emitter writes this, but a frame may: both entries must count, or it is never acked."""
    _, _, sinks, message, step = run
    parts = list(frames_from_batch(make_batch([250]), "b", 10, 100))
    both = replace(parts[0], **{name: np.concatenate([getattr(parts[0], name),
                                                      getattr(parts[1], name)])
                                for name in ("event_id", "part", "n_parts", "pulse_count",
                                             "sensor_id", "time", "charge", "auxiliary")}
                )  # fmt: skip
    first, rest = message(both), message(parts[2])
    assert step(first) == []
    assert sorted(step(rest)) == sorted([first.token, rest.token])
    assert [(p["event_id"], p["n_pulses"], p["flags"]) for p in sinks.predictions] == [
        (1000, 250, [])
    ]


def test_an_event_id_twice_in_one_frame_is_refused_and_the_rest_predicted(run, make_batch) -> None:  # type: ignore[no-untyped-def]
    _, _, sinks, message, step = run
    batch = make_batch([3, 4, 5])
    batch.event_id[2] = batch.event_id[0]
    m = message(next(frames_from_batch(batch, "b", 10, 100)))
    assert step(m) == [m.token]
    assert sinks.dead == [(m.offset, "duplicate-event-id", (1000, 1000))]
    assert [p["event_id"] for p in sinks.predictions] == [1001]


def test_the_same_event_replayed_within_one_step_is_predicted_and_both_messages_acked(
    run, make_batch
) -> None:  # type: ignore[no-untyped-def]
    _, model, sinks, message, step = run
    frame = next(frames_from_batch(make_batch([3, 4]), "b", 10, 100))
    first, again = message(frame), message(frame)
    assert step(first, again) == [first.token, again.token]
    assert all(len(set(call)) == len(call) for call in model.calls)  # each id once per request
    assert sinks.dead == []


def test_a_mongodb_outage_writes_each_prediction_to_kafka_once(run, make_batch) -> None:  # type: ignore[no-untyped-def]
    _, _, sinks, message, step = run
    sinks.failures["mongo"] = 2
    m = message(next(frames_from_batch(make_batch([3, 4]), "b", 10, 100)))
    with_fast_retries(lambda: step(m))
    assert [p["event_id"] for p in sinks.predictions] == [1000, 1001]
    assert [p["event_id"] for p in sinks.mongo] == [1000, 1001]


def test_a_dlq_write_kafka_never_accepts_stops_the_worker(run, make_batch) -> None:  # type: ignore[no-untyped-def]
    _, _, sinks, message, step = run
    sinks.fatal = FatalKafkaError("record too large")
    with pytest.raises(FatalKafkaError):
        step(message(b"not avro at all"))


def test_an_event_with_pulses_far_apart_or_at_int64_extremes_is_refused(run, make_batch) -> None:  # type: ignore[no-untyped-def]
    _, _, sinks, message, step = run
    batch = make_batch([3, 3, 3])
    batch.time[1] = 10_000_000  # event 1000 spans 10 ms
    batch.time[4] = np.iinfo(np.int64).min  # event 1001
    m = message(next(frames_from_batch(batch, "b", 10, 100)))
    assert step(m) == [m.token]
    assert sinks.dead == [(m.offset, "event-too-long,time-out-of-range", (1000, 1001))]
    assert [p["event_id"] for p in sinks.predictions] == [1002]


def with_fast_retries(call):  # type: ignore[no-untyped-def]
    from icecube_stream.stream import pipeline

    before, pipeline.RETRY_PAUSE_S = pipeline.RETRY_PAUSE_S, 0.0
    try:
        return call()
    finally:
        pipeline.RETRY_PAUSE_S = before


def test_parts_of_one_event_on_two_partitions_are_refused_not_predicted_twice(
    run, make_batch
) -> None:  # type: ignore[no-untyped-def]
    pipeline, _, sinks, message, step = run
    parts = list(frames_from_batch(make_batch([250]), "b", 10, 100))
    on_0, on_1 = message(parts[0], partition=0), message(parts[1], partition=1)
    assert step(on_0) == []
    assert sorted(step(on_1)) == sorted([on_0.token, on_1.token])
    assert sorted(sinks.dead) == [(on_0.offset, "parts-across-partitions", (1000,)),
                                  (on_1.offset, "parts-across-partitions", (1000,))]  # fmt: skip
    assert sinks.predictions == []
    assert all(a.pending == 0 for a in pipeline.assemblers.values())


def test_a_part_after_its_event_was_released_incomplete_is_dead_lettered(
    frame_codec, make_batch
) -> None:  # type: ignore[no-untyped-def]
    sinks = RecordingSinks()
    pipeline = Pipeline(
        Settings(assembly_timeout_s=0.0), RecordingModel(), sinks.destinations, sinks
    )
    frames = list(frames_from_batch(make_batch([250]), "b", 10, 100))
    messages = [Incoming(f"m{k}", "t", 0, k, None, encode_frame(f, frame_codec))
                for k, f in enumerate(frames)]  # fmt: skip
    assert asyncio.run(pipeline.step(messages[:1])) == ["m0"]  # released incomplete at once
    assert asyncio.run(pipeline.step(messages[1:2])) == ["m1"]
    assert sinks.dead == [(1, "late-part", (1000,))]
    assert [p["flags"] for p in sinks.predictions] == [["incomplete"]]


def test_a_cancelled_step_is_not_retried(run) -> None:  # type: ignore[no-untyped-def]
    pipeline, *_ = run
    calls = 0

    async def cancelled() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(pipeline._retry_forever("mongo", cancelled))
    assert calls == 1


def test_a_dependency_that_fails_is_retried_until_it_answers(run, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pipeline, *_ = run
    monkeypatch.setattr("icecube_stream.stream.pipeline.RETRY_PAUSE_S", 0.0)
    answers = iter([ConnectionError("down"), TimeoutError("slow"), "written"])

    async def flaky() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    before = metrics.WORKER_WRITE_FAILURES.labels(sink="mongo")._value.get()
    assert asyncio.run(pipeline._retry_forever("mongo", flaky)) == "written"
    assert metrics.WORKER_WRITE_FAILURES.labels(sink="mongo")._value.get() == before + 2
