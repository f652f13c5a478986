"""Who listens on a TCP port: so a clash is reported with the owner's name, not a stack trace."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class PortOwner:
    pid: int | None
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command})" if self.pid else "an unknown process"


def is_listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_owner(port: int) -> PortOwner | None:
    """The process listening on `port`, or None when nothing listens there.

    The pid is None when the socket belongs to a process this user may not look into.
    """
    pids = [
        conn.pid
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
    ]
    if not pids:
        return None
    pid = next((pid for pid in pids if pid is not None), None)
    return PortOwner(pid, _command(pid) if pid is not None else "")


def _command(pid: int) -> str:
    try:
        return " ".join(arg for arg in psutil.Process(pid).cmdline() if arg)[:120]
    except psutil.Error:
        return "?"
