"""Process supervision for the local stack: start detached, remember by pid file, stop exactly that.

A pid file records the pid *and* the process start time read from /proc, so a pid that the
kernel reused for an unrelated process is never mistaken for ours (and never killed).
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

PROC = Path("/proc")


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


def parse_stat(stat: str) -> tuple[int, int]:
    """(process group id, start time in clock ticks) from a /proc/<pid>/stat line.

    The command name (field 2) may contain spaces and parentheses, so fields are counted from
    the last closing parenthesis.
    """
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[2]), int(fields[19])


def _stat(pid: int) -> tuple[int, int] | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        if stat[stat.rindex(")") + 2] == "Z":  # exited, waiting to be reaped
            return None
        return parse_stat(stat)
    except (OSError, ValueError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    stat = _stat(pid)
    return None if stat is None else stat[1]


def is_alive(record: PidRecord) -> bool:
    return start_ticks(record.pid) == record.start_ticks


def group_members(pgid: int) -> list[int]:
    """Live pids of a process group: a service may fork workers (MLflow does)."""
    members = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == pgid:
                members.append(int(entry.name))
    return members


def descendants(pid: int) -> list[int]:
    """A process and all its live descendants, by parent pid: some (BentoML's workers) start
    sessions of their own, which a process group would miss."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


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
