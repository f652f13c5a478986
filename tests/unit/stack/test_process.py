"""Process supervision against real child processes (no services needed)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from icecube_stream.config import Settings
from icecube_stream.stack import manager, ports, process
from icecube_stream.stack.service import StackError
from support import free_port

pytestmark = pytest.mark.unit

SLEEPER = [
    sys.executable,
    "-c",
    "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)",
]


def test_start_ticks_are_the_kernels_start_time() -> None:
    """Pid files written from /proc/<pid>/stat's start time must still match."""
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    assert process.start_ticks(os.getpid()) == int(stat[stat.rindex(")") + 2 :].split()[19])


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "child never exited"
            time.sleep(0.05)
        assert process.start_ticks(child.pid) is None
        assert child.pid not in process.group_members(os.getpgid(0))
    finally:
        child.wait()


def test_spawn_then_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    record = process.spawn(SLEEPER, tmp_path / "sleeper.log")
    try:
        assert process.is_alive(record)
        deadline = time.monotonic() + 10
        while len(process.group_members(record.pid)) < 2:
            assert time.monotonic() < deadline, "child never started"
            time.sleep(0.05)
        assert sorted(process.descendants(record.pid)) == sorted(process.group_members(record.pid))
        process.stop(record, timeout_s=5)
        assert not process.is_alive(record)
        assert process.group_members(record.pid) == []
    finally:
        process.stop(record, timeout_s=1)


#: A supervisor whose child starts a session of its own, as BentoML's workers do.
SUPERVISOR = [
    sys.executable,
    "-c",
    "import subprocess, time; subprocess.Popen(['sleep', '60'], start_new_session=True); "
    "time.sleep(60)",
]


def _child_of(record: process.PidRecord) -> int:
    deadline = time.monotonic() + 10
    while len(members := process.tagged(record.run_tag)) < 2:
        assert time.monotonic() < deadline, "child never started"
        time.sleep(0.05)
    (child,) = set(members) - {record.pid}
    return child


def test_a_killed_supervisors_child_is_found_as_an_orphan_and_stopped(tmp_path: Path) -> None:
    record = process.spawn(SUPERVISOR, tmp_path / "supervisor.log")
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)  # not of the run
    try:
        child = _child_of(record)
        assert child not in process.group_members(record.pid)  # a process group would miss it
        assert process.orphans(record) == []
        os.kill(record.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process.is_alive(record):
            assert time.monotonic() < deadline, "supervisor survived SIGKILL"
            time.sleep(0.05)
        assert process.orphans(record) == [child]
        process.stop(record, timeout_s=5)
        assert process.tagged(record.run_tag) == []
        assert bystander.poll() is None, "stop touched a process outside the run"
    finally:
        bystander.kill()
        bystander.wait()
        process.stop(record, timeout_s=1)


def test_status_tells_exited_from_stopped_and_down_reclaims_orphans(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path, worker_web_port=free_port(), prometheus_port=free_port()
    )
    (worker,) = manager.select(settings, ["worker"])
    assert [(s.health, s.ok) for s in manager.status(settings, ["prometheus", "worker"])] == [
        ("stopped", False),  # infrastructure, meant to run
        ("stopped", True),  # a pipeline component nobody started
    ]
    record = process.spawn(SUPERVISOR, tmp_path / "supervisor.log")
    record.save(worker.pid_path)
    try:
        child = _child_of(record)
        os.kill(record.pid, signal.SIGKILL)
        wait = time.monotonic() + 10
        while (status := manager.status(settings, ["worker"])[0]).health != "orphaned":
            assert time.monotonic() < wait, status
            time.sleep(0.05)
        assert (status.pid, status.ok) == (child, False)
        manager.down(settings, ["worker"], report=lambda _: None)
        assert process.tagged(record.run_tag) == []
        assert manager.status(settings, ["worker"])[0].health == "stopped"
        record.save(worker.pid_path)  # started by the stack, gone without `stack down`
        assert [(s.health, s.ok) for s in manager.status(settings, ["worker"])] == [
            ("exited", False)
        ]
    finally:
        process.stop(record, timeout_s=1)


def test_a_reused_pid_is_not_taken_for_ours(tmp_path: Path) -> None:
    record = process.spawn(SLEEPER, tmp_path / "sleeper.log")
    impostor = process.PidRecord(pid=record.pid, start_ticks=record.start_ticks - 1, argv=[])
    try:
        assert not process.is_alive(impostor)
        process.stop(impostor)  # must not touch the real process
        assert process.is_alive(record)
    finally:
        process.stop(record, timeout_s=1)


def test_pid_record_round_trip_and_corrupt_file(tmp_path: Path) -> None:
    record = process.PidRecord(pid=12, start_ticks=34, argv=["a", "b c"])
    record.save(tmp_path / "run" / "x.pid")
    assert process.PidRecord.load(tmp_path / "run" / "x.pid") == record
    (tmp_path / "bad.pid").write_text("{not json")
    assert process.PidRecord.load(tmp_path / "bad.pid") is None
    assert process.PidRecord.load(tmp_path / "missing.pid") is None


@pytest.fixture
def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_port_owner_names_the_listening_process(listener: socket.socket) -> None:
    owner = ports.port_owner(listener.getsockname()[1])
    assert owner is not None
    assert owner.pid == os.getpid()
    assert "python" in owner.command


def test_a_connected_port_is_not_taken_for_a_listening_one(listener: socket.socket) -> None:
    with socket.create_connection(listener.getsockname()) as client:
        assert ports.port_owner(client.getsockname()[1]) is None


def test_up_refuses_a_taken_port_and_names_its_owner(listener: socket.socket, tmp_path) -> None:
    port = listener.getsockname()[1]
    settings = Settings(state_dir=tmp_path, prometheus_port=port, health_timeout_s=5)
    with pytest.raises(StackError, match=rf"port {port} is already taken by pid \d+ \(.*python"):
        manager.up(settings, ["prometheus"], report=lambda _: None)
    assert not (tmp_path / "run" / "prometheus.pid").exists()


def test_unknown_service_names_are_reported() -> None:
    with pytest.raises(StackError, match=r"unknown service.*zookeeper.*known: kafka"):
        manager.select(Settings(), ["kafka", "zookeeper"])
