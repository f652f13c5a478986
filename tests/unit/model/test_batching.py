import numpy as np
import pytest

from icecube_stream.events.batch import EventBatch
from icecube_stream.model.batching import bucketed_batches, padding_fraction, random_batches
from icecube_stream.model.features import FeatureConfig, features_from_batch

pytestmark = pytest.mark.unit


def test_buckets_cover_every_event_once() -> None:
    lengths = np.random.default_rng(1).integers(1, 200, 1000)
    for rng in (None, np.random.default_rng(2)):
        batches = bucketed_batches(lengths, 64, rng)
        together = np.sort(np.concatenate(batches))
        np.testing.assert_array_equal(together, np.arange(1000))
        assert max(b.size for b in batches) == 64


def test_bucketing_pads_less_than_random_batches(events: EventBatch) -> None:
    lengths = features_from_batch(events, FeatureConfig(max_pulses=256)).lengths
    rng = np.random.default_rng(0)
    random_waste = padding_fraction(lengths, random_batches(lengths.size, 64, rng))
    bucket_waste = padding_fraction(lengths, bucketed_batches(lengths, 64, rng))
    assert bucket_waste < random_waste / 2


def test_padding_fraction_of_equal_lengths_is_zero() -> None:
    lengths = np.full(10, 7)
    assert padding_fraction(lengths, bucketed_batches(lengths, 4)) == 0.0
