"""Waiting for the running worker to have written a number of predictions (bench, demo).

Read from the worker's own counter on its /metrics page: cheap to poll, where counting documents
in FerretDB scans the collection and slows the very writes being waited for.
"""

from __future__ import annotations

import time

from icecube_stream.config import Settings
from icecube_stream.observe.http import metric_value

PREDICTIONS_TOTAL = "icecube_worker_predictions_total"


def predictions_written(settings: Settings) -> int:
    """Predictions the running worker has written since it started (its own counter)."""
    return int(metric_value(settings.worker_metrics_url, PREDICTIONS_TOTAL))


def wait_for_predictions(settings: Settings, total: int, timeout_s: float) -> None:
    """Until the worker's counter reaches `total`, or TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (done := predictions_written(settings)) < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {total} predictions after {timeout_s:.0f} s")
        time.sleep(0.2)
