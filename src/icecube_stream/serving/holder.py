"""The served model: loaded from the registry alias (or a fixed URI), warmed up, swapped whole.

A request takes one snapshot of (model, name, version) and uses it to the end, so a reload that
swaps the snapshot while requests run fails none of them: old requests finish on the old model,
new ones start on the new. A new version serves only after its warm-up inference returned finite
directions; a version that fails to load leaves the current one in place.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.connections import mlflow_tracking_uri
from icecube_stream.model.inference import DirectionModel, Prediction
from icecube_stream.wire.frame import PulseFrame

log = logging.getLogger(__name__)

#: How long the loader waits before trying again while no model could be loaded at all.
RETRY_LOAD_S = 5.0
HEARTBEAT_S = 2.0

Loader = Callable[[str, Settings], DirectionModel]


class ModelNotReadyError(RuntimeError):
    """No model loaded yet (or every load so far failed); the message says why."""


@dataclass(frozen=True)
class ServedModel:
    model: DirectionModel
    name: str
    version: str
    uri: str


@dataclass(frozen=True)
class Target:
    """What should be served now: a pinned URI and the version it stands for."""

    uri: str
    name: str
    version: str


@dataclass(frozen=True)
class ReloadOutcome:
    outcome: str  # loaded | unchanged | failed
    model_name: str | None
    model_version: str | None
    previous_version: str | None
    detail: str

    def as_dict(self) -> dict[str, str | None]:
        return dict(self.__dict__)


def _default_loader(uri: str, settings: Settings) -> DirectionModel:
    from icecube_stream.model.registry import load_model

    return load_model(uri, settings)


def resolve_target(settings: Settings) -> Target:
    """The alias's current version as a pinned URI, or the configured model URI."""
    if settings.model_uri:
        uri = settings.model_uri
        parts = uri.removeprefix("models:/").split("/")
        if uri.startswith("models:/") and len(parts) == 2 and parts[1].isdigit():
            return Target(uri=uri, name=parts[0], version=parts[1])
        return Target(uri=uri, name=settings.model_name, version=uri)
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_tracking_uri(settings))
    found = client.get_model_version_by_alias(settings.model_name, settings.model_alias)
    version = str(found.version)
    return Target(
        uri=f"models:/{settings.model_name}/{version}", name=settings.model_name, version=version
    )


def warm_up(model: DirectionModel) -> None:
    """One small inference so the first request pays no lazy initialisation; must be finite."""
    n_sensors = model.geometry.positions.shape[0]
    n = min(16, n_sensors)
    sensor_id = np.arange(n, dtype=np.int16)
    time_ns = 10_000 + 50 * np.arange(n, dtype=np.int64)
    charge = np.ones(n, np.float32)
    auxiliary = np.zeros(n, np.bool_)
    offsets = np.array([0, n // 2, n], np.int64)
    pred = model.predict(sensor_id, time_ns, charge, auxiliary, offsets)
    if not (np.isfinite(pred.direction).all() and np.isfinite(pred.sigma).all()):
        raise ValueError("warm-up inference returned non-finite directions")


class ModelHolder:
    def __init__(
        self,
        settings: Settings,
        loader: Loader = _default_loader,
        resolver: Callable[[Settings], Target] = resolve_target,
    ) -> None:
        self.settings = settings
        self._loader = loader
        self._resolver = resolver
        self._current: ServedModel | None = None
        self._reload_lock = threading.Lock()  # one load at a time
        self._infer_lock = threading.Lock()  # one forward pass at a time: torch uses the cores
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_error: str | None = "model not loaded yet"

    @property
    def current(self) -> ServedModel | None:
        return self._current

    @property
    def ready(self) -> bool:
        return self._current is not None

    def reload(self, force: bool = False) -> ReloadOutcome:
        """Serve the target version if it differs from the current one (or force a reload)."""
        with self._reload_lock:
            before = self._current
            previous = before.version if before else None
            try:
                target = self._resolver(self.settings)
                if before is not None and not force and before.uri == target.uri:
                    metrics.MODEL_SERVER_RELOADS.labels(outcome="unchanged").inc()
                    return ReloadOutcome(
                        "unchanged", before.name, before.version, previous, "already serving it"
                    )
                model = self._loader(target.uri, self.settings)
                warm_up(model)
            except Exception as error:  # any failure keeps the model that serves now
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("model load failed, keeping version %s: %s", previous, self.last_error)
                metrics.MODEL_SERVER_RELOADS.labels(outcome="failed").inc()
                return ReloadOutcome(
                    "failed",
                    before.name if before else None,
                    previous,
                    previous,
                    self.last_error,
                )
            self._current = ServedModel(model, target.name, target.version, target.uri)
            self.last_error = None
            if before is not None:
                metrics.MODEL_SERVER_MODEL_INFO.labels(before.name, before.version).set(0)
            metrics.MODEL_SERVER_MODEL_INFO.labels(target.name, target.version).set(1)
            metrics.MODEL_SERVER_RELOADS.labels(outcome="loaded").inc()
            log.info("serving %s version %s (%s)", target.name, target.version, target.uri)
            return ReloadOutcome(
                "loaded", target.name, target.version, previous, f"loaded {target.uri}"
            )

    def predict(
        self, request: PulseFrame, served: ServedModel | None = None
    ) -> tuple[ServedModel, Prediction]:
        """Directions for events that passed `check_events`, from `served` (the snapshot the
        request was checked against), else the current model."""
        served = served or self._current
        if served is None:
            raise ModelNotReadyError(f"no model loaded yet ({self.last_error})")
        with self._infer_lock:
            started = time.perf_counter()
            prediction = served.model.predict(
                request.sensor_id,
                request.time,
                request.charge,
                request.auxiliary,
                request.offsets,
                checked=True,  # by the app's check_events: validated once
            )
            metrics.MODEL_SERVER_INFERENCE_SECONDS.observe(time.perf_counter() - started)
        return served, prediction

    # ------------------------------------------------------------------ background work

    def start(self) -> None:
        """Load in the background (the server answers 503 until then), then watch the alias."""
        for target in (self._load_and_watch, self._heartbeat):
            thread = threading.Thread(target=target, name=f"model-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _load_and_watch(self) -> None:
        while not self._stop.is_set() and self.reload().outcome != "loaded":
            self._stop.wait(RETRY_LOAD_S)
        poll = self.settings.model_reload_poll_s
        if poll <= 0:
            return
        while not self._stop.wait(poll):
            self.reload()

    def _heartbeat(self) -> None:
        while True:
            metrics.MODEL_SERVER_HEARTBEAT.set(time.time())
            metrics.MODEL_SERVER_READY.set(1 if self.ready else 0)
            if self._stop.wait(HEARTBEAT_S):
                return
