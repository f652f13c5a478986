"""A second, private stack on free ports, for tests that start, kill and stop whole services
without touching the live stack the other tests share."""

import os
from pathlib import Path

import pytest

from support import free_ports

PORTS = ["KAFKA", "KAFKA_CONTROLLER", "MONGO", "PROMETHEUS", "MLFLOW", "ALERTMANAGER",
         "BLACKBOX", "MODEL_SERVER", "WORKER_WEB"]  # fmt: skip


@pytest.fixture
def private_env(tmp_path: Path) -> dict[str, str]:
    """ICECUBE_* variables of a stack of its own: state directory and every port."""
    ports = {
        f"ICECUBE_{name}_PORT": str(port) for name, port in zip(PORTS, free_ports(9), strict=True)
    }
    return {**os.environ, "ICECUBE_STATE_DIR": str(tmp_path / "state"), **ports}
