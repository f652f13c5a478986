"""promtool checks the shipped Prometheus configuration and runs the alert rules' unit tests.

promtool comes with the Prometheus that `icecube-stream stack install` provides, hence an
integration test: it needs no running service, only the installed tool.
"""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from icecube_stream.config import Settings
from icecube_stream.stack.prometheus import Prometheus

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str, cwd: Path = DEPLOY) -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool not on PATH: run `icecube-stream stack install` (Debian's prometheus)"
    result = subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_alert_rules_pass_their_unit_tests() -> None:
    output = promtool("test", "rules", "alerts_test.yml")
    assert "SUCCESS" in output


def test_alert_rules_are_valid() -> None:
    output = promtool("check", "rules", "alerts.yml")
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    assert f"SUCCESS: {sum(len(group['rules']) for group in groups)} rules found" in output


def test_config_as_the_local_stack_writes_it_is_valid(tmp_path: Path) -> None:
    service = Prometheus(Settings(state_dir=tmp_path))
    service.prepare()
    output = promtool("check", "config", "prometheus.yml", cwd=service.config_dir)
    assert "SUCCESS: 1 rule files found" in output
    assert "is valid prometheus config file syntax" in output
    assert "WARNING" not in output  # e.g. a file_sd glob matching no target file
