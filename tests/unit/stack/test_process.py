"""Process supervision against real child processes (no services needed)."""

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from icecube_stream.config import Settings
from icecube_stream.stack import manager, ports, process
from icecube_stream.stack.service import StackError

pytestmark = pytest.mark.unit

SLEEPER = [
    sys.executable,
    "-c",
    "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)",
]


def test_parse_stat_handles_spaces_and_parentheses_in_the_name() -> None:
    stat = "4242 (odd (name) x) S 1 4200 4200 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0"
    assert process.parse_stat(stat) == (4200, 987654)


def test_spawn_then_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    record = process.spawn(SLEEPER, tmp_path / "sleeper.log")
    try:
        assert process.is_alive(record)
        deadline = time.monotonic() + 10
        while len(process.group_members(record.pid)) < 2:
            assert time.monotonic() < deadline, "child never started"
            time.sleep(0.05)
        process.stop(record, timeout_s=5)
        assert not process.is_alive(record)
        assert process.group_members(record.pid) == []
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


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2384 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1
   1: 0100007F:2384 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 222 1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1
"""


def test_listening_inodes_keeps_only_listen_state_on_the_port() -> None:
    assert ports.listening_inodes(PROC_NET_TCP, 0x2384) == {111}
    assert ports.listening_inodes(PROC_NET_TCP, 8080) == {333}
    assert ports.listening_inodes(PROC_NET_TCP, 1) == set()


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


def test_up_refuses_a_taken_port_and_names_its_owner(listener: socket.socket, tmp_path) -> None:
    port = listener.getsockname()[1]
    settings = Settings(state_dir=tmp_path, prometheus_port=port, health_timeout_s=5)
    with pytest.raises(StackError, match=rf"port {port} is already taken by pid \d+ \(.*python"):
        manager.up(settings, ["prometheus"], report=lambda _: None)
    assert not (tmp_path / "run" / "prometheus.pid").exists()


def test_unknown_service_names_are_reported() -> None:
    with pytest.raises(StackError, match=r"unknown service.*zookeeper.*known: kafka"):
        manager.select(Settings(), ["kafka", "zookeeper"])
