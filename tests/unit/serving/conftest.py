from collections.abc import Callable

import numpy as np
import pytest
import torch

from icecube_stream.config import Settings
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.model.features import FeatureConfig
from icecube_stream.model.inference import DirectionModel
from icecube_stream.model.network import NetworkConfig
from icecube_stream.wire.codec import AvroCodec
from icecube_stream.wire.frame import PulseFrame
from icecube_stream.wire.topics import PULSES, topic_codec


@pytest.fixture(scope="session")
def codec() -> AvroCodec:
    return topic_codec(PULSES, Settings().topics_dir)


@pytest.fixture(scope="session")
def tiny_model() -> DirectionModel:
    """An untrained but deterministic model: serving must reproduce its outputs, not be good."""
    torch.manual_seed(0)
    return DirectionModel(
        FeatureConfig(max_pulses=16),
        NetworkConfig(d_model=16, n_context=1, ff_dim=32),
        icecube_geometry(),
    )


FrameFactory = Callable[..., PulseFrame]


@pytest.fixture
def make_frame() -> FrameFactory:
    def make(counts: tuple[int, ...] = (5, 9, 3), seed: int = 0, **overrides: object) -> PulseFrame:
        rng = np.random.default_rng(seed)
        n = sum(counts)
        fields: dict[str, object] = {
            "source": "test",
            "emitted_at_ns": 0,
            "event_id": np.arange(100, 100 + len(counts), dtype=np.int64),
            "part": np.zeros(len(counts), np.int32),
            "n_parts": np.ones(len(counts), np.int32),
            "pulse_count": np.asarray(counts, np.int32),
            "sensor_id": rng.integers(0, 5160, n).astype(np.int16),
            "time": np.sort(rng.integers(6000, 20000, n)).astype(np.int64),
            "charge": rng.uniform(0.2, 3, n).astype(np.float32),
            "auxiliary": rng.random(n) < 0.4,
        }
        fields.update(overrides)
        return PulseFrame(**fields)  # type: ignore[arg-type]

    return make
