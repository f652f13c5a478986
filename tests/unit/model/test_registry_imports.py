"""Serving loads models through the registry; it must not pay for training code or plotting.
Nor do evaluation and prediction: only `evaluate --plots` draws."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def test_the_registry_and_the_model_holder_do_not_import_matplotlib() -> None:
    check = (
        "import icecube_stream.model.registry, icecube_stream.serving.holder, sys; "
        "import icecube_stream.events.evaluate, icecube_stream.model.predict; "
        "assert 'matplotlib' not in sys.modules"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
