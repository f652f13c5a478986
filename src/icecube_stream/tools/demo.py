"""`icecube-stream demo`: the whole pipeline on a simulated data set, then a summary.

Run after `stack up` (`make demo` does both). Trains the quick model first when the registry
has no champion, starts the model server and the worker, sends the data set, waits until every
event has its prediction and says what happened and where to look. Everything stays running
until `icecube-stream stack down worker model-server` (or `make stack-down`).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pymongo import MongoClient

from icecube_stream.config import Settings
from icecube_stream.connections import mongo_options
from icecube_stream.events.batch import EventBatch, concat_batches
from icecube_stream.events.dataset import EventDataset
from icecube_stream.events.geometry import ICECUBE_GEOMETRY_ID
from icecube_stream.model.registry import load_model
from icecube_stream.physics.angles import angles_to_vector, angular_distance
from icecube_stream.stack import manager
from icecube_stream.stream import emitter, topics
from icecube_stream.tools.waiting import predictions_written, wait_for_predictions

Say = Callable[[str], None]
TRAINING_EVENTS = 40_000


@dataclass(frozen=True)
class DemoSummary:
    events: int
    predicted: int
    throughput_eps: float
    latency_p50_s: float
    latency_p99_s: float
    mean_angular_error: float  # radians; `lines` prints degrees
    model: str
    alerts: int = 0  # of these events, sent to the alerts topic
    #: The demo started the model server and the worker, so the latency includes their first
    #: seconds (consumer-group join, first forward passes); `bench` measures a warm pipeline.
    cold_start: bool = False

    def lines(self, settings: Settings) -> list[str]:
        latency = f"{self.latency_p50_s:.2f} s / {self.latency_p99_s:.2f} s"
        if self.cold_start:
            latency += " (cold start included)"
        return [
            f"events sent              {self.events:,}",
            f"predictions in MongoDB   {self.predicted:,}",
            f"throughput               {self.throughput_eps:,.0f} events/s (emit to written)",
            f"latency p50 / p99        {latency}",
            f"mean angular error       {math.degrees(self.mean_angular_error):.1f}° "
            "vs simulated truth",
            f"model                    {self.model}",
            f"alerts                   {self.alerts:,} (icecube-stream alerts tail)",
            "",
            f"MLflow                   {settings.mlflow_tracking_uri}",
            f"Prometheus               {settings.prometheus_url}",
            f"MongoDB                  {settings.mongo_url} "
            f"{settings.mongo_database}.{settings.mongo_collection}",
            "predictions              icecube-stream predictions tail",
            "stop                     make stack-down",
        ]


def has_servable_champion(settings: Settings) -> bool:
    """A champion exists, this code can load it (one saved by an older feature set cannot), it
    was trained for IceCube's geometry, which the demo's data uses, and it has the classifier
    the alert policy needs and the starting-track output its 90 % regions are calibrated with."""
    try:
        champion = load_model(settings.model_alias, settings)
    except ValueError:  # ModelLoadError included
        return False
    network = champion.network
    return (
        champion.geometry.identity == ICECUBE_GEOMETRY_ID
        and network.classifier
        and network.starting
    )


def is_icecube_data_set(path: Path) -> bool:
    return (path / "train_meta.parquet").is_file() and (
        EventDataset(path).geometry.identity == ICECUBE_GEOMETRY_ID
    )


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "icecube_stream", *args], check=True)


def run(settings: Settings, workdir: Path, events: int, rate_hz: float, say: Say) -> DemoSummary:
    # Fresh event ids every run: the pipeline keeps one prediction per event id, first wins.
    first_id = time.time_ns() // 1_000_000 * 1_000
    data = workdir / f"run-{first_id}"
    say(f"simulating {events:,} events into {data}")
    cli("simulate", "--events", str(events), "--out", str(data), "--seed", "2026",
        "--first-event-id", str(first_id))  # fmt: skip
    if not has_servable_champion(settings):
        training = workdir / "training"
        say(f"no servable champion of {settings.model_name}: training the quick model (minutes)")
        if not is_icecube_data_set(training):  # absent, or of another geometry: replaced
            cli("simulate", "--events", str(TRAINING_EVENTS), "--out", str(training), "--seed", "7",
                "--force")  # fmt: skip
        cli("train", "--data", str(training), "--config", "quick", "--promote")
    topics.apply(settings)
    say("starting the model server and the worker")
    pipeline = ["model-server", "worker"]
    cold = any(manager.running(manager.SERVICES[name](settings)) is None for name in pipeline)
    manager.up(settings, pipeline, report=say)

    batch = concat_batches(list(EventDataset(data).iter_batches()))
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_url, **mongo_options(settings))
    collection = client[settings.mongo_database][settings.mongo_collection]
    ids = batch.event_id.tolist()
    say(f"sending {batch.n_events:,} events at {rate_hz:,.0f} Hz")
    before = predictions_written(settings)
    report = emitter.emit(settings, [(data.name, batch)], rate_hz=rate_hz)
    if not report.ok:
        raise RuntimeError(f"Kafka did not acknowledge {report.failed_events} events")
    expected = int((batch.pulse_counts <= settings.max_event_pulses).sum())
    wait_for_predictions(settings, before + expected, timeout_s=600)
    # One query at the end: FerretDB answers it by scanning the whole collection.
    summary = summarise(batch, list(collection.find({"_id": {"$in": ids}})))
    alerts = client[settings.mongo_database][settings.mongo_alerts_collection]
    sent, settled = -1, alerts.count_documents({"_id": {"$in": ids}, "sent": True})
    while settled != sent:  # a step's alerts may land just after its predictions
        sent = settled
        time.sleep(1.0)
        settled = alerts.count_documents({"_id": {"$in": ids}, "sent": True})
    client.close()
    return replace(summary, cold_start=cold, alerts=sent)


def summarise(batch: EventBatch, documents: list[dict[str, Any]]) -> DemoSummary:
    """Figures of one run from its prediction documents and the data set's truth."""
    by_id = {d["_id"]: d for d in documents}
    index = [k for k, event_id in enumerate(batch.event_id.tolist()) if event_id in by_id]
    chosen = [by_id[int(batch.event_id[k])] for k in index]
    emitted = np.array([d["emitted_at_ns"] for d in chosen], np.int64)
    written = np.array([d["written_at_ns"] for d in chosen], np.int64)
    predicted = np.array([[d["x"], d["y"], d["z"]] for d in chosen])
    assert batch.azimuth is not None and batch.zenith is not None
    truth = angles_to_vector(batch.azimuth[index], batch.zenith[index])
    p50, p99 = np.percentile((written - emitted) / 1e9, [50, 99])
    versions = sorted({f"{d['model_name']} v{d['model_version']}" for d in chosen})
    return DemoSummary(
        events=batch.n_events,
        predicted=len(chosen),
        throughput_eps=len(chosen) / max(1e-9, (written.max() - emitted.min()) / 1e9),
        latency_p50_s=float(p50),
        latency_p99_s=float(p99),
        mean_angular_error=float(np.mean(angular_distance(predicted, truth))),
        model=", ".join(versions),
    )
