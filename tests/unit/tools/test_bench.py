import subprocess
import sys
import time

import numpy as np
import pytest

from icecube_stream.tools.bench import BenchResult, percentiles, summary, tree_cpu_seconds

pytestmark = pytest.mark.unit


def test_percentiles() -> None:
    p50, p99 = percentiles(np.arange(1, 101, dtype=float))
    assert p50 == pytest.approx(50.5)
    assert p99 == pytest.approx(99.01)
    assert all(np.isnan(percentiles(np.array([]))))


def result(throughput: float, inference: float, cpu_worker: float) -> BenchResult:
    return BenchResult(
        events=100, offered_rate_hz=2700.0, throughput_eps=throughput, latency_p50_s=0.1,
        latency_p99_s=0.4, sustainable_rate_hz=4000.0, lost=0, duplicated=0, kafka_eps=5000.0,
        inference_eps=inference, naive_http_eps=300.0,
        cpu_s_per_1000_events={"worker": cpu_worker, "model-server": 0.3},
    )  # fmt: skip


def test_a_round_gives_its_ratios_and_the_summary_spans_the_rounds() -> None:
    rounds = [result(3000, 6000, 0.1).as_dict(), result(2000, 5000, 0.2).as_dict(),
              result(4000, 5000, 0.2).as_dict()]  # fmt: skip
    assert rounds[0]["end_to_end_over_inference"] == 0.5
    assert rounds[0]["events_per_cpu_s"] == 2500.0  # 1000 events per 0.4 CPU-seconds
    assert rounds[0]["headroom"] == pytest.approx(4000 / 2700, abs=0.01)
    figures = summary(rounds)
    assert figures["throughput_eps"] == (2000, 3000, 4000)
    assert figures["end_to_end_over_inference"] == (0.4, 0.5, 0.8)
    assert figures["cpu_s_per_1000_events.worker"] == (0.1, 0.2, 0.2)
    assert "events" not in figures and "offered_rate_hz" not in figures


BURN = """
import time
start = time.process_time()
while time.process_time() - start < 0.5:
    pass
time.sleep(30)
"""
PARENT = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {BURN!r}])
time.sleep(30)
"""


def test_tree_cpu_counts_a_busy_child_process() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        deadline = time.monotonic() + 20
        while tree_cpu_seconds(parent.pid) < 0.45:
            assert time.monotonic() < deadline, "the child's CPU time was never counted"
            time.sleep(0.1)
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()
