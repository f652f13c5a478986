"""The track/cascade head: shape, training only where truth exists, models saved before it."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from icecube_stream.events.batch import EventBatch
from icecube_stream.model.classifier import classifier_report, starting_truth, track_truth
from icecube_stream.model.configs import get_config
from icecube_stream.model.data import labelled, select
from icecube_stream.model.features import FeatureConfig
from icecube_stream.model.inference import DirectionModel
from icecube_stream.model.kappa_calibration import KappaCalibration
from icecube_stream.model.loss import topology_bce
from icecube_stream.model.network import DirectionNet, NetworkConfig
from icecube_stream.model.train import fit, validation_mask

pytestmark = pytest.mark.unit

TINY = NetworkConfig(d_model=16, n_context=1, ff_dim=32)
FEATURES = FeatureConfig(max_pulses=24)


def _args(events: EventBatch) -> tuple[np.ndarray, ...]:
    return (events.sensor_id, events.time, events.charge, events.auxiliary, events.offsets)


def test_truth_maps_the_simulator_types_onto_two_classes() -> None:
    types = np.array(["track", "cascade", "starting_track", "muon_bundle"], dtype=object)
    np.testing.assert_array_equal(track_truth(types, 4), [1.0, 0.0, 1.0, np.nan])
    np.testing.assert_array_equal(starting_truth(types, 4), [0.0, 0.0, 1.0, np.nan])
    assert np.isnan(track_truth(None, 3)).all() and np.isnan(starting_truth(None, 3)).all()


def test_the_head_gives_one_probability_per_event(events: EventBatch) -> None:
    torch.manual_seed(0)
    model = DirectionModel(FEATURES, TINY, events.geometry)
    prediction = model.predict(*_args(events))
    assert prediction.track_probability.shape == (events.n_events,)
    assert ((prediction.track_probability > 0) & (prediction.track_probability < 1)).all()
    # an untrained head is not constant: the probability depends on the event
    assert np.std(prediction.track_probability) > 1e-4


def test_bce_is_zero_without_truth_and_takes_only_known_events() -> None:
    logit = torch.tensor([2.0, -1.0, 0.5], requires_grad=True)
    none = topology_bce(logit, torch.full((3,), float("nan")))
    assert float(none) == 0.0 and not none.requires_grad
    some = topology_bce(logit, torch.tensor([1.0, float("nan"), 0.0]))
    expected = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(0.5))) / 2
    assert float(some.detach()) == pytest.approx(expected, rel=1e-6)
    some.backward()  # type: ignore[no-untyped-call]
    assert logit.grad is not None and float(logit.grad[1]) == 0.0


def _split(events: EventBatch) -> tuple:
    in_val = validation_mask(events.event_id, 0.2)
    return labelled(select(events, ~in_val), FEATURES), labelled(select(events, in_val), FEATURES)


def test_training_learns_the_topology(events: EventBatch) -> None:
    config = replace(
        get_config("quick"), network=TINY, features=FEATURES, epochs=6, batch_size=64,
        learning_rate=1e-2, classifier_weight=3.0,
    )  # fmt: skip
    train, val = _split(events)
    net, history = fit(
        config, train.features, train.targets, val.features, val.targets,
        train_track=train.track, val_track=val.track, train_starting=train.starting,
    )  # fmt: skip
    assert net.config.classifier and net.config.starting
    accuracy = history.epochs[-1].val_track_accuracy
    known = val.track[~np.isnan(val.track)]
    majority = max(known.mean(), 1 - known.mean())
    assert accuracy is not None and accuracy > majority + 0.03, (accuracy, majority)


def test_without_truth_the_term_is_skipped_and_no_head_is_built(events: EventBatch) -> None:
    """Real data has no event types: training still works, and the model says NaN instead of
    the guess of an untrained output."""
    config = replace(get_config("quick"), network=TINY, features=FEATURES, epochs=1, batch_size=64)
    train, val = _split(events)
    net, history = fit(config, train.features, train.targets, val.features, val.targets)
    assert not net.config.classifier and history.epochs[0].val_track_accuracy is None
    assert not net.config.starting
    prediction = DirectionModel(FEATURES, net.config, events.geometry, net).predict(*_args(events))
    assert np.isnan(prediction.track_probability).all()
    assert np.isfinite(prediction.kappa).all()


@pytest.mark.parametrize(
    ("version", "outputs", "dropped"),
    [(1, 4, ("classifier", "starting")), (2, 5, ("starting",))],
)
def test_a_model_saved_before_an_output_existed_still_loads(
    events: EventBatch, tmp_path: Path, version: int, outputs: int, dropped: tuple[str, ...]
) -> None:
    """Format 1: a 4-output head, no `classifier`, `starting` or `calibration` key in
    config.json; format 2: a 5-output head (the classifier), no `starting` key."""
    torch.manual_seed(2)
    old_network = replace(TINY, **{name: False for name in dropped})
    old = DirectionModel(FEATURES, old_network, events.geometry)
    assert old.net.head[-1].out_features == outputs
    directory = old.save(tmp_path / "old")
    config = json.loads((directory / "config.json").read_text())
    for name in dropped:
        del config["network"][name]
    if version == 1:
        del config["calibration"]
    config["format_version"] = version
    (directory / "config.json").write_text(json.dumps(config))
    loaded = DirectionModel.load(directory)
    assert not loaded.network.starting and loaded.network.classifier == (version == 2)
    before, after = old.predict(*_args(events)), loaded.predict(*_args(events))
    np.testing.assert_array_equal(before.direction, after.direction)
    np.testing.assert_array_equal(before.kappa, after.kappa)
    np.testing.assert_array_equal(before.track_probability, after.track_probability)
    assert np.isnan(after.track_probability).all() == (version == 1)


def test_an_unknown_format_is_refused(events: EventBatch, tmp_path: Path) -> None:
    directory = DirectionModel(FEATURES, TINY, events.geometry).save(tmp_path / "m")
    config = json.loads((directory / "config.json").read_text())
    config["format_version"] = 99
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unsupported model format 99"):
        DirectionModel.load(directory)


def test_the_calibration_is_saved_and_applied(events: EventBatch, tmp_path: Path) -> None:
    torch.manual_seed(3)
    plain = DirectionModel(FEATURES, TINY, events.geometry)
    raw = plain.predict(*_args(events))
    # an untrained head sits near one value: a threshold at its median exercises both scales
    threshold = float(np.median(raw.track_probability))
    calibration = KappaCalibration(track_scale=2.0, cascade_scale=0.5, threshold=threshold)
    calibrated = DirectionModel(FEATURES, TINY, events.geometry, plain.net, calibration)
    loaded = DirectionModel.load(calibrated.save(tmp_path / "c"))
    assert loaded.calibration == calibration
    out = loaded.predict(*_args(events))
    track_like = raw.track_probability >= threshold
    assert 0 < track_like.sum() < events.n_events
    np.testing.assert_allclose(out.kappa, raw.kappa * np.where(track_like, 2.0, 0.5), rtol=1e-12)
    np.testing.assert_allclose(out.sigma, 1 / np.sqrt(out.kappa))


def test_classifier_report_counts_right_calls_per_type() -> None:
    types = np.array(["track", "track", "starting_track", "cascade", "cascade", "other"])
    probability = np.array([0.9, 0.2, 0.5, 0.1, 0.7, 0.9])
    report = classifier_report(probability, types)
    assert report is not None
    assert report["n_events"] == 5 and report["accuracy"] == pytest.approx(3 / 5)
    assert report["per_type"]["track"] == {"n_events": 2, "accuracy": 0.5}
    assert report["per_type"]["starting_track"]["accuracy"] == 1.0  # 0.5 counts as track-like
    assert report["per_class"]["cascade"] == {"n_events": 2, "accuracy": 0.5}
    assert report["per_class"]["track_like"]["accuracy"] == pytest.approx(2 / 3)
    assert "other" not in report["per_type"]
    assert classifier_report(np.full(6, np.nan), types) is None


def test_a_model_records_the_head_its_net_has(events: EventBatch, tmp_path: Path) -> None:
    """fit() drops the head for data without types; the saved config must say so even when
    the caller passes the config it asked for."""
    net = DirectionNet(replace(TINY, classifier=False))
    model = DirectionModel(FEATURES, TINY, events.geometry, net)
    loaded = DirectionModel.load(model.save(tmp_path / "m"))
    assert not loaded.network.classifier
