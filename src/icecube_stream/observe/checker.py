"""The truth checker: predictions compared with the true directions of simulated (or labelled)
events, as Prometheus metrics.

The worker never sees truth, and must not: real data has none. A data set in the Kaggle layout
keeps it in `{split}_meta.parquet` (azimuth, zenith per event_id), so a separate consumer of the
predictions topic that loads that table can measure the live angular error without touching the
pipeline. Run it beside a replay of the same data set (`icecube-stream check-truth --data DIR`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
from confluent_kafka import Consumer
from numpy.typing import NDArray

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.connections import confluent_config
from icecube_stream.physics.angles import angles_to_vector, angular_distance
from icecube_stream.wire.topics import PREDICTIONS, topic_codec

WINDOW_EVENTS = 1000


class TruthError(ValueError):
    pass


def read_truth(data: Path, split: str = "train") -> dict[int, NDArray[np.float64]]:
    """event_id -> true unit direction, from the data set's meta file."""
    path = data / f"{split}_meta.parquet"
    if not path.is_file():
        raise TruthError(f"{path} not found: the checker needs a data set with truth")
    meta = pl.read_parquet(path, columns=["event_id", "azimuth", "zenith"])
    if meta["azimuth"].null_count() or meta["zenith"].null_count():
        raise TruthError(f"{path} has events without azimuth/zenith (test split?)")
    vectors = angles_to_vector(meta["azimuth"].to_numpy(), meta["zenith"].to_numpy())
    return dict(zip(meta["event_id"].to_list(), vectors, strict=True))


class TruthChecker:
    """Per-event angular errors into a histogram, and a running mean over the latest events."""

    def __init__(self, truth: dict[int, NDArray[np.float64]], window: int = WINDOW_EVENTS) -> None:
        self.truth = truth
        self.recent: deque[float] = deque(maxlen=window)

    def observe(self, event_id: int, direction: NDArray[np.float64]) -> float | None:
        true = self.truth.get(event_id)
        if true is None:
            metrics.CHECKER_UNKNOWN.inc()
            return None
        error = float(angular_distance(direction[None, :], true[None, :])[0])
        metrics.CHECKER_EVENTS.inc()
        metrics.CHECKER_ANGULAR_ERROR.observe(error)
        self.recent.append(error)
        metrics.CHECKER_MEAN_ERROR.set(sum(self.recent) / len(self.recent))
        return error

    @property
    def mean_error(self) -> float | None:
        return sum(self.recent) / len(self.recent) if self.recent else None


def run(
    settings: Settings,
    checker: TruthChecker,
    stop: threading.Event,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Consume predictions until `stop` is set, from the oldest retained on first use."""
    codec = topic_codec(PREDICTIONS, settings.topics_dir)
    consumer = Consumer(
        confluent_config(settings)
        | {
            "group.id": f"{settings.worker_app_id}-truth-checker",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([settings.topic(PREDICTIONS)])
    try:
        while not stop.is_set():
            metrics.CHECKER_HEARTBEAT.set_to_current_time()
            batch = consumer.consume(1000, timeout=1.0)
            seen = 0
            for message in batch:
                value = message.value()
                if message.error() is not None or value is None:
                    continue
                record = codec.decode(value)
                direction = np.array([record["x"], record["y"], record["z"]], np.float64)
                checker.observe(int(record["event_id"]), direction)
                seen += 1
            if on_batch and seen:
                on_batch(seen)
    finally:
        consumer.close()
