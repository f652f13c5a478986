from dataclasses import replace

import numpy as np
import pytest

from icecube_stream.config import Settings
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.physics.angles import angles_to_vector
from icecube_stream.tools.demo import summarise

pytestmark = pytest.mark.unit


def test_summary_of_a_run(events: EventBatch) -> None:
    batch = take_events(events, 0, 3)
    assert batch.azimuth is not None and batch.zenith is not None
    truth = angles_to_vector(batch.azimuth, batch.zenith)
    # Two of three events predicted exactly, emitted 1 s apart and written 0.5 s later.
    documents = [
        {
            "_id": int(batch.event_id[k]),
            "emitted_at_ns": k * 1_000_000_000,
            "written_at_ns": k * 1_000_000_000 + 500_000_000,
            "x": truth[k, 0],
            "y": truth[k, 1],
            "z": truth[k, 2],
            "model_name": "icecube-direction",
            "model_version": "3",
        }
        for k in (0, 2)
    ]
    summary = summarise(batch, documents)
    assert (summary.events, summary.predicted) == (3, 2)
    assert summary.latency_p50_s == pytest.approx(0.5)
    assert summary.throughput_eps == pytest.approx(2 / 2.5)
    assert summary.mean_angular_error == pytest.approx(0.0, abs=1e-6)
    assert summary.model == "icecube-direction v3"
    lines = replace(summary, cold_start=True).lines(Settings())
    assert any(line.startswith("mean angular error") and "0.0°" in line for line in lines)
    assert any("(cold start included)" in line for line in lines)
    assert not any("cold start" in line for line in summary.lines(Settings()))
    assert np.isfinite(summary.latency_p99_s)
