"""The training loop, free of MLflow and of the CLI: data in, trained network and history out.

A tracked run (`training_run.py`) and the command line wrap this, so a unit test can train a
tiny model on a few hundred events in seconds and check that the loss goes down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from icecube_stream.model.batching import bucketed_batches
from icecube_stream.model.configs import TrainConfig
from icecube_stream.model.features import PulseFeatures
from icecube_stream.model.inference import predict_arrays
from icecube_stream.model.kappa_calibration import KappaCalibration, fit_kappa_calibration
from icecube_stream.model.loss import topology_bce, vmf_nll
from icecube_stream.model.network import DirectionNet
from icecube_stream.physics.angles import angular_distance

#: Every event's fraction of the data set goes to validation by a hash of its event_id, so the
#: split is the same whichever order or subset of files is read.
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
F32 = np.float32


def validation_mask(event_id: NDArray[np.int64], fraction: float) -> NDArray[np.bool_]:
    """True for the events that belong to the validation set (deterministic per event_id)."""
    mixed = (np.asarray(event_id).astype(np.uint64) * _HASH_MULTIPLIER) >> np.uint64(40)
    return np.asarray((mixed % np.uint64(10_000)) < np.uint64(round(fraction * 10_000)))


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    train_loss: float
    val_loss: float
    val_mean_angular_error: float
    val_median_angular_error: float
    seconds: float
    #: Share of validation events of known topology the classifier gets right (None: no truth).
    val_track_accuracy: float | None = None


@dataclass
class History:
    epochs: list[EpochReport] = field(default_factory=list)

    @property
    def best(self) -> EpochReport:
        return min(self.epochs, key=lambda e: e.val_mean_angular_error)


def set_threads(threads: int) -> None:
    """Pin torch's intra-op pool: the model shares 2 cores with broker, worker and database."""
    torch.set_num_threads(threads)


def evaluate_loss(
    net: DirectionNet, features: PulseFeatures, targets: NDArray[np.float64]
) -> tuple[float, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Mean vMF loss, angular errors, predicted directions and raw kappa on a whole set."""
    direction, kappa, _, _ = predict_arrays(net, features)
    with torch.inference_mode():
        loss = vmf_nll(
            torch.from_numpy(direction), torch.from_numpy(kappa), torch.from_numpy(targets)
        )
    errors = angular_distance(direction, targets)
    return float(loss.mean()), errors, direction, kappa


def fit_calibration(
    net: DirectionNet,
    features: PulseFeatures,
    targets: NDArray[np.float64],
    event_types: NDArray[Any] | None,
) -> KappaCalibration:
    """The kappa calibration of a trained network, fitted on a validation set (its true types,
    where known, make it per type: kappa_calibration.py)."""
    raw = predict_arrays(net, features)
    return fit_kappa_calibration(
        angular_distance(raw.direction, targets),
        raw.kappa,
        raw.track_probability,
        raw.starting_probability,
        event_types,
    )


def track_accuracy(
    net: DirectionNet, features: PulseFeatures, truth: NDArray[np.float64] | None
) -> float | None:
    """Share of events of known topology classified right at probability 0.5."""
    known = None if truth is None else ~np.isnan(truth)
    if truth is None or known is None or not known.any() or not net.config.classifier:
        return None
    probability = predict_arrays(net, features).track_probability
    return float(np.mean((probability[known] >= 0.5) == (truth[known] == 1.0)))


def _any_known(truth: NDArray[np.float64] | None) -> bool:
    return truth is not None and bool((~np.isnan(truth)).any())


def fit(
    config: TrainConfig,
    train: PulseFeatures,
    train_targets: NDArray[np.float64],
    val: PulseFeatures,
    val_targets: NDArray[np.float64],
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    train_track: NDArray[np.float64] | None = None,
    val_track: NDArray[np.float64] | None = None,
    train_starting: NDArray[np.float64] | None = None,
) -> tuple[DirectionNet, History]:
    """Train with AdamW and a one-cycle schedule; keep the weights of the best validation epoch.

    `train_track` / `val_track` are the topology truth (1 track-like, 0 cascade, NaN unknown):
    where known, a binary cross-entropy term weighted `classifier_weight` trains the classifier
    head, and another one the starting-track output on `train_starting` (1 starting track, 0
    another type). Without any truth (real data) the network is built without those outputs,
    so their probabilities are NaN rather than the guesses of untrained outputs.
    `on_step` is called with the number of events of every optimiser step (progress bars).
    """
    set_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    network = replace(
        config.network,
        classifier=config.network.classifier and _any_known(train_track),
        starting=config.network.starting and _any_known(train_starting),
    )
    net = DirectionNet(network)
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = -(-train.n_events // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser,
        max_lr=config.learning_rate,
        total_steps=max(1, steps_per_epoch * config.epochs),
        pct_start=0.15,
    )
    targets = torch.from_numpy(train_targets.astype(np.float32))
    track, starting = (
        torch.from_numpy(
            np.full(train.n_events, np.nan, np.float32) if truth is None else truth.astype(F32)
        )
        for truth in (train_track, train_starting)
    )
    history = History()
    best_state: dict[str, torch.Tensor] | None = None
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        net.train()
        total, count = 0.0, 0
        for idx in bucketed_batches(train.lengths, config.batch_size, rng):
            batch = train.pad(idx)
            direction, kappa, track_logit, starting_logit = net(
                torch.from_numpy(batch.pulses),
                torch.from_numpy(batch.mask),
                torch.from_numpy(batch.events),
            )
            target = targets[idx]
            cosine = (direction * target).sum(dim=-1).clamp(-1.0 + 1e-6, 1.0 - 1e-6)
            angle = torch.acos(cosine)
            loss = (vmf_nll(direction, kappa, target) + config.angle_weight * angle).mean()
            if net.config.classifier and config.classifier_weight > 0:
                loss = loss + config.classifier_weight * topology_bce(track_logit, track[idx])
            if net.config.starting and config.starting_weight > 0:
                loss = loss + config.starting_weight * topology_bce(starting_logit, starting[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * idx.size
            count += idx.size
            if on_step is not None:
                on_step(int(idx.size))
        val_loss, errors, _, _ = evaluate_loss(net, val, val_targets)
        report = EpochReport(
            epoch=epoch,
            train_loss=total / max(count, 1),
            val_loss=val_loss,
            val_mean_angular_error=float(np.mean(errors)),
            val_median_angular_error=float(np.median(errors)),
            seconds=time.perf_counter() - started,
            val_track_accuracy=track_accuracy(net, val, val_track),
        )
        history.epochs.append(report)
        if report is history.best:
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if on_epoch is not None:
            on_epoch(report)
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return net, history
