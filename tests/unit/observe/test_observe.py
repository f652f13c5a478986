"""Truth checker, metrics endpoint and alert listing, without services."""

import socket
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest

from icecube_stream import metrics
from icecube_stream.observe import alerts, checker
from icecube_stream.observe.http import serve_metrics
from icecube_stream.physics.angles import angles_to_vector

pytestmark = pytest.mark.unit


def sample(name: str) -> float:
    value = metrics.CHECKER_REGISTRY.get_sample_value(name)
    return 0.0 if value is None else value


def test_checker_measures_angular_error_and_counts_unknown_events() -> None:
    truth = {1: angles_to_vector(0.0, np.pi / 2), 2: angles_to_vector(np.pi / 2, np.pi / 2)}
    check = checker.TruthChecker(truth, window=2)
    events_before = sample("icecube_checker_events_total")
    unknown_before = sample("icecube_checker_unknown_events_total")
    assert check.observe(1, np.array([1.0, 0.0, 0.0])) == pytest.approx(0.0, abs=1e-7)
    assert check.observe(2, np.array([1.0, 0.0, 0.0])) == pytest.approx(np.pi / 2)
    assert check.observe(99, np.array([1.0, 0.0, 0.0])) is None
    assert check.mean_error == pytest.approx(np.pi / 4)
    assert sample("icecube_checker_angular_error_mean_radians") == pytest.approx(np.pi / 4)
    assert sample("icecube_checker_events_total") - events_before == 2
    assert sample("icecube_checker_unknown_events_total") - unknown_before == 1
    check.observe(2, np.array([0.0, 1.0, 0.0]))  # the window keeps the latest two
    assert check.mean_error == pytest.approx(np.pi / 4)


def test_truth_is_read_from_the_meta_file(tmp_path: Any) -> None:
    pl.DataFrame({"batch_id": [1, 1], "event_id": [5, 6], "azimuth": [0.0, 1.0],
                  "zenith": [0.0, 2.0]}).write_parquet(tmp_path / "train_meta.parquet")  # fmt: skip
    truth = checker.read_truth(tmp_path)
    np.testing.assert_allclose(truth[6], angles_to_vector(1.0, 2.0))
    with pytest.raises(checker.TruthError, match="not found"):
        checker.read_truth(tmp_path, "test")


def test_a_busy_metrics_port_is_skipped() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve_metrics("127.0.0.1", port, metrics.EMITTER_REGISTRY) is False
    assert serve_metrics("127.0.0.1", 0, metrics.EMITTER_REGISTRY) is False  # 0: no endpoint


def test_active_alerts_are_sorted_firing_first(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"status": "success", "data": {"alerts": [
        {"labels": {"alertname": "DeadLetters", "severity": "warning", "component": "worker"},
         "annotations": {"summary": "dlq"}, "state": "pending", "activeAt": "t1"},
        {"labels": {"alertname": "Watchdog", "severity": "none"}, "annotations": {},
         "state": "firing", "activeAt": "t0"},
        {"labels": {"alertname": "TargetDown", "severity": "critical", "instance": "a:1"},
         "annotations": {"summary": "down"}, "state": "firing", "activeAt": "t2"},
    ]}}  # fmt: skip

    def fake_get(url: str, timeout: float) -> httpx.Response:
        assert url == "http://p:9/api/v1/alerts"
        return httpx.Response(200, json=body, request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", fake_get)
    found = alerts.active_alerts("http://p:9")
    assert [(a.name, a.state) for a in found] == [
        ("TargetDown", "firing"), ("Watchdog", "firing"), ("DeadLetters", "pending")]  # fmt: skip
    assert found[0].instance == "a:1" and found[2].summary == "dlq"


def test_unreachable_prometheus_is_an_error() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(alerts.PrometheusUnavailableError, match="did not answer"):
        alerts.active_alerts(f"http://127.0.0.1:{port}", timeout_s=2)
