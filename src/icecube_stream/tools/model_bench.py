"""In-process inference speed: events/s at batch sizes 1, 32 and 256 on the CPU threads given.

Two figures per batch size: `end_to_end` (pulses -> feature builder -> network -> angles, what a
model server pays) and `network` (padded features already built: the network alone). Timed over
consecutive slices of real events, after one warm-up pass, with torch pinned to `threads`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.model.inference import DirectionModel, predict_arrays

BATCH_SIZES = (1, 32, 256)


def _events_for(batch_size: int, available: int, budget_events: int) -> int:
    # Batch 1 is slow per event: fewer events keep the whole benchmark within seconds.
    wanted = budget_events if batch_size > 1 else max(1, budget_events // 20)
    return max(batch_size, min(available, wanted) // batch_size * batch_size)


def benchmark(
    model: DirectionModel,
    events: EventBatch,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    threads: int = 2,
    budget_events: int = 8192,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    results: dict[str, Any] = {}
    for size in batch_sizes:
        n = _events_for(size, events.n_events, budget_events)
        slices = [take_events(events, i, min(i + size, n)) for i in range(0, n, size)]
        warm = slices[0]
        model.predict(warm.sensor_id, warm.time, warm.charge, warm.auxiliary, warm.offsets, size)
        started = time.perf_counter()
        for part in slices:
            model.predict(
                part.sensor_id, part.time, part.charge, part.auxiliary, part.offsets, size
            )
        end_to_end = time.perf_counter() - started
        features = [
            model.featurize(p.sensor_id, p.time, p.charge, p.auxiliary, p.offsets) for p in slices
        ]
        started = time.perf_counter()
        for f in features:
            predict_arrays(model.net, f, size)
        network = time.perf_counter() - started
        results[str(size)] = {
            "events": n,
            "end_to_end_eps": n / end_to_end,
            "network_eps": n / network,
            "latency_per_batch_ms": 1000.0 * end_to_end / len(slices),
        }
    return {
        "threads": threads,
        "max_pulses": model.features.max_pulses,
        "network": model.network.as_dict(),
        "mean_pulses_per_event": float(np.mean(events.pulse_counts)),
        "batch_sizes": results,
    }
