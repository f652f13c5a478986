"""Process supervision for the local stack: start detached, remember by pid file, stop exactly that.

A pid file records the pid *and* the process start time, so a pid that the kernel reused for an
unrelated process is never mistaken for ours (and never killed). It also records a run tag, an
environment variable that every descendant inherits: BentoML's workers start sessions of their
own and outlive a SIGKILLed supervisor, and the tag is how the stack finds and reclaims them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RUN_TAG = "ICECUBE_STACK_RUN"


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_ticks: int
    argv: list[str]
    run_tag: str = ""  # empty in pid files written before tags existed

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> PidRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(
                pid=int(data["pid"]),
                start_ticks=int(data["start_ticks"]),
                argv=data["argv"],
                run_tag=str(data.get("run_tag", "")),
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


def tagged(run_tag: str) -> list[int]:
    """Live pids whose environment carries this run tag: the run's whole process tree, even the
    parts that left its session or lost their parent."""
    if not run_tag:
        return []
    members = []
    for proc in psutil.process_iter(["status"]):
        if proc.info["status"] in (None, psutil.STATUS_ZOMBIE):
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(RUN_TAG) == run_tag:
                members.append(proc.pid)
    return members


def orphans(record: PidRecord) -> list[int]:
    """Processes of a run whose leader is gone (killed, crashed) but which still run."""
    return [] if is_alive(record) else tagged(record.run_tag)


def spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> PidRecord:
    """Start argv in its own session (so it outlives this CLI), output appended to log_path."""
    run_tag = uuid.uuid4().hex
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {}), RUN_TAG: run_tag},
            start_new_session=True,
        )
    ticks = start_ticks(process.pid)
    return PidRecord(pid=process.pid, start_ticks=ticks or 0, argv=argv, run_tag=run_tag)


def stop(record: PidRecord, timeout_s: float = 20.0) -> None:
    """SIGTERM the run (its process group while the leader lives, so the leader shuts its
    children down in order; else every tagged process), SIGKILL what is left after timeout_s."""

    def left() -> list[int]:
        # started with start_new_session, so the leader's pid is the group id while it lives
        group = group_members(record.pid) if is_alive(record) else []
        return sorted({*group, *tagged(record.run_tag)})

    if is_alive(record):
        _signal_group(record.pid, signal.SIGTERM)
    else:
        _signal_each(left(), signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_each(left(), signal.SIGKILL)
    while left() and time.monotonic() < deadline + 5:
        time.sleep(0.1)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _signal_each(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
