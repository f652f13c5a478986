from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from icecube_stream.events.batch import EventBatch
from icecube_stream.model.configs import get_config
from icecube_stream.model.data import labelled, select
from icecube_stream.model.features import FeatureConfig, features_from_batch
from icecube_stream.model.inference import DirectionModel
from icecube_stream.model.network import DirectionNet, NetworkConfig
from icecube_stream.model.train import fit, validation_mask

pytestmark = pytest.mark.unit

TINY = NetworkConfig(d_model=16, n_context=1, ff_dim=32)


def test_outputs_are_unit_directions_and_positive_kappa(events: EventBatch) -> None:
    torch.manual_seed(0)
    f = features_from_batch(events, FeatureConfig(max_pulses=24))
    batch = f.pad(np.arange(50))
    with torch.inference_mode():
        direction, kappa, track_logit, starting_logit = DirectionNet(TINY)(
            torch.from_numpy(batch.pulses),
            torch.from_numpy(batch.mask),
            torch.from_numpy(batch.events),
        )
    np.testing.assert_allclose(direction.norm(dim=-1).numpy(), 1.0, rtol=1e-5)
    assert (kappa > 0).all()
    for logit in (track_logit, starting_logit):
        assert logit.shape == (50,) and torch.isfinite(logit).all()


@pytest.mark.parametrize("n_attention", [0, 1])
def test_padding_does_not_change_the_prediction(events: EventBatch, n_attention: int) -> None:
    """An event padded into a wide batch predicts exactly what it predicts alone: the mask works,
    and a batch without padding, which skips it, agrees."""
    torch.manual_seed(0)
    net = DirectionNet(replace(TINY, n_attention=n_attention)).eval()
    f = features_from_batch(events, FeatureConfig(max_pulses=64))
    short = int(np.argmin(f.lengths))
    alone = f.pad(np.array([short]))
    wide = f.pad(np.array([short, int(np.argmax(f.lengths))]))
    assert wide.pulses.shape[1] > alone.pulses.shape[1]
    with torch.inference_mode():
        one = net(*(torch.from_numpy(a) for a in (alone.pulses, alone.mask, alone.events)))
        two = net(*(torch.from_numpy(a) for a in (wide.pulses, wide.mask, wide.events)))
    torch.testing.assert_close(one.direction[0], two.direction[0], rtol=1e-5, atol=1e-5)
    for first, second in zip(one[1:], two[1:], strict=True):
        torch.testing.assert_close(first[0], second[0], rtol=1e-4, atol=1e-4)


def test_tiny_training_run_decreases_the_loss(events: EventBatch) -> None:
    config = replace(
        get_config("quick"),
        network=TINY,
        features=FeatureConfig(max_pulses=24),
        epochs=4,
        batch_size=64,
        learning_rate=1e-2,
    )
    in_val = validation_mask(events.event_id, 0.2)
    train = labelled(select(events, ~in_val), config.features)
    val = labelled(select(events, in_val), config.features)
    assert 0 < val.features.n_events < events.n_events
    _, history = fit(config, train.features, train.targets, val.features, val.targets)
    losses = [e.train_loss for e in history.epochs]
    assert losses[-1] < losses[0] - 0.2, losses
    assert history.epochs[-1].val_loss < history.epochs[0].val_loss


def test_validation_split_is_stable_per_event() -> None:
    ids = np.arange(1, 20001, dtype=np.int64)
    mask = validation_mask(ids, 0.1)
    assert 0.08 < mask.mean() < 0.12
    np.testing.assert_array_equal(validation_mask(ids[::-1], 0.1), mask[::-1])


def test_saved_model_predicts_the_same(events: EventBatch, tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = DirectionModel(FeatureConfig(max_pulses=24), TINY, events.geometry)
    args = (events.sensor_id, events.time, events.charge, events.auxiliary, events.offsets)
    before = model.predict(*args)
    loaded = DirectionModel.load(model.save(tmp_path / "m"))
    after = loaded.predict(*args)
    np.testing.assert_array_equal(before.direction, after.direction)
    np.testing.assert_array_equal(before.kappa, after.kappa)
    np.testing.assert_array_equal(before.track_probability, after.track_probability)
    assert ((after.track_probability > 0) & (after.track_probability < 1)).all()
