"""Process supervision for the local stack: start detached, remember by pid file, stop exactly that.

A pid file records the pid *and* the process start time, so a pid that the kernel reused for an
unrelated process is never mistaken for ours (and never killed).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_ticks: int
    argv: list[str]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> PidRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(
                pid=int(data["pid"]), start_ticks=int(data["start_ticks"]), argv=data["argv"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def start_ticks(pid: int) -> int | None:
    """Clock ticks from boot to the process's start; None when it is gone or a zombie.

    psutil's create_time() is that plus the boot time as the wall clock sees it now, so taking
    the boot time off again gives a value that setting the clock does not move.
    """
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # exited, waiting to be reaped
            return None
        return round((proc.create_time() - psutil.boot_time()) * CLOCK_TICKS)
    except psutil.Error:
        return None


def is_alive(record: PidRecord) -> bool:
    return start_ticks(record.pid) == record.start_ticks


def group_members(pgid: int) -> list[int]:
    """Live pids of a process group: a service may fork workers (MLflow does)."""
    members = []
    for proc in psutil.process_iter(["status"]):
        if proc.info["status"] in (None, psutil.STATUS_ZOMBIE):
            continue  # gone meanwhile, or exited and waiting to be reaped
        with contextlib.suppress(OSError):
            if os.getpgid(proc.pid) == pgid:
                members.append(proc.pid)
    return members


def descendants(pid: int) -> list[int]:
    """A process and all its descendants: some (BentoML's workers) start sessions of their own,
    which a process group would miss."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        children = []
    return [pid, *(child.pid for child in children)]


def spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> PidRecord:
    """Start argv in its own session (so it outlives this CLI), output appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    ticks = start_ticks(process.pid)
    return PidRecord(pid=process.pid, start_ticks=ticks or 0, argv=argv)


def stop(record: PidRecord, timeout_s: float = 20.0) -> None:
    """SIGTERM the record's process group, SIGKILL whatever is left after timeout_s."""
    if not is_alive(record):
        return
    pgid = record.pid  # started with start_new_session, so the leader's pid is the group id
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)
    while group_members(pgid) and time.monotonic() < deadline + 5:
        time.sleep(0.1)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
