"""What `evaluate` keeps beside the errors for figures: pulse counts, a baseline on the same
events and a bounded sample of predicted and true directions."""

from pathlib import Path

import numpy as np
import pytest

from icecube_stream.events.batch import EventBatch
from icecube_stream.events.dataset import EventDataset
from icecube_stream.events.evaluate import evaluate, linefit_reconstructor

pytestmark = pytest.mark.unit


def _truth(batch: EventBatch) -> tuple[np.ndarray, np.ndarray]:
    assert batch.azimuth is not None and batch.zenith is not None
    return batch.azimuth, batch.zenith


def test_pulse_counts_baseline_and_a_sample_across_chunks(
    dataset_dir: Path, simulated: EventBatch
) -> None:
    batches = list(EventDataset(dataset_dir).iter_batches(events_per_chunk=30, max_events=200))
    result = evaluate(batches, _truth, baseline=linefit_reconstructor, sample_events=75)
    np.testing.assert_array_equal(result.pulse_counts, simulated.pulse_counts[:200])
    assert result.baseline_errors is not None
    np.testing.assert_allclose(
        result.baseline_errors, evaluate(batches, linefit_reconstructor).errors
    )
    assert result.errors == pytest.approx(np.zeros(200), abs=1e-7)
    sample = result.sample
    assert sample is not None and sample.azimuth.size == 75  # 30 + 30 + 15
    assert simulated.azimuth is not None and simulated.zenith is not None
    np.testing.assert_array_equal(sample.true_azimuth, simulated.azimuth[:75])
    np.testing.assert_array_equal(sample.true_zenith, simulated.zenith[:75])
    np.testing.assert_array_equal(sample.azimuth, simulated.azimuth[:75])


def test_without_a_baseline_none_is_scored() -> None:
    result = evaluate([], _truth)
    assert result.baseline_errors is None and result.sample is None
    assert result.pulse_counts.size == 0
