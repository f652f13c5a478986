"""The Faust worker as a supervised process of the local stack (started only when named)."""

from __future__ import annotations

import sys
import time

import httpx

from icecube_stream.config import Settings
from icecube_stream.observe.http import metric_value
from icecube_stream.stack.service import Service

PREDICTIONS_TOTAL = "icecube_worker_predictions_total"


class Worker(Service):
    name = "worker"
    infrastructure = False

    @property
    def ports(self) -> list[int]:
        return [self.settings.worker_web_port]

    @property
    def endpoint(self) -> str:
        return self.settings.worker_metrics_url

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "faust", "-A", "icecube_stream.app", "worker", "-l", "info"]

    def healthy(self) -> bool:
        try:
            return httpx.get(self.endpoint, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def predictions_written(settings: Settings) -> int:
    """Predictions the running worker has written since it started (its own counter)."""
    return int(metric_value(settings.worker_metrics_url, PREDICTIONS_TOTAL))


def wait_for_predictions(settings: Settings, total: int, timeout_s: float) -> None:
    """Until the worker's counter reaches `total`. Cheap to poll, where counting documents in
    FerretDB scans the collection and slows the very writes being waited for."""
    deadline = time.monotonic() + timeout_s
    while (done := predictions_written(settings)) < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {total} predictions after {timeout_s:.0f} s")
        time.sleep(0.2)
