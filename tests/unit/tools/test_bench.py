import subprocess
import sys
import time

import numpy as np
import pytest

from icecube_stream.tools.bench import percentiles, tree_cpu_seconds

pytestmark = pytest.mark.unit


def test_percentiles() -> None:
    p50, p99 = percentiles(np.arange(1, 101, dtype=float))
    assert p50 == pytest.approx(50.5)
    assert p99 == pytest.approx(99.01)
    assert all(np.isnan(percentiles(np.array([]))))


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
