"""A second, private stack on free ports: up is idempotent, down leaves no process behind, and a
service that cannot start is reported with its log."""

import json
from pathlib import Path

import pytest

from icecube_stream.stack import process
from support import cli

pytestmark = pytest.mark.integration


def pid_records(state_dir: Path) -> dict[str, process.PidRecord]:
    records = {}
    for path in (state_dir / "run").glob("*.pid"):
        record = process.PidRecord.load(path)
        assert record is not None
        records[path.stem] = record
    return records


def test_up_twice_then_down_leaves_no_process(private_env: dict[str, str]) -> None:
    state_dir = Path(private_env["ICECUBE_STATE_DIR"])
    first = cli(private_env, "stack", "up")
    records = pid_records(state_dir)
    try:
        assert first.returncode == 0, first.stderr
        assert sorted(records) == ["alertmanager", "blackbox", "kafka", "mlflow", "mongo",
                                   "prometheus"]  # fmt: skip
        assert all(process.is_alive(r) for r in records.values())

        second = cli(private_env, "stack", "up")
        assert second.returncode == 0, second.stderr
        assert second.stderr.count("already running") == 6
        assert pid_records(state_dir) == records

        status = cli(private_env, "stack", "status", "--json")
        report = json.loads(status.stdout)
        assert status.returncode == 0
        assert report["healthy"] is True  # the pipeline's components stopped is fine
        assert {name: s["pid"] for name, s in report["services"].items()} == {
            **{name: r.pid for name, r in records.items()},
            "model-server": None,
            "worker": None,
        }
    finally:
        down = cli(private_env, "stack", "down")
    assert down.returncode == 0, down.stderr
    for name, record in records.items():
        assert not process.is_alive(record), name
        assert process.group_members(record.pid) == [], f"{name} left children behind"
    after = json.loads(cli(private_env, "stack", "status", "--json").stdout)
    assert {s["health"] for s in after["services"].values()} == {"stopped"}


def test_a_service_that_cannot_start_is_reported_with_its_log(
    private_env: dict[str, str], tmp_path: Path
) -> None:
    deploy = tmp_path / "deploy"
    (deploy / "prometheus").mkdir(parents=True)
    (deploy / "prometheus" / "prometheus.yml").write_text("scrape_configs: [{job_name: 1: 2}]\n")
    env = {**private_env, "ICECUBE_DEPLOY_DIR": str(deploy)}
    result = cli(env, "stack", "up", "--only", "prometheus")
    cli(env, "stack", "down", "--only", "prometheus")
    assert result.returncode == 1
    assert "prometheus exited during start-up; last lines of" in result.stderr
    assert "prometheus.yml" in result.stderr  # Prometheus' own complaint about the file
