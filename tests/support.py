"""Small helpers shared by the service-level tests (importable: tests/ is on sys.path)."""

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """Distinct free ports: all bound at once, so none is handed out twice."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [int(sock.getsockname()[1]) for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`icecube-stream ARGS` in a child process with exactly this environment."""
    return subprocess.run(
        [sys.executable, "-m", "icecube_stream", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll until condition() holds; fail naming what never happened."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.25)


def write_once(sink: Any, records: list[dict[str, Any]]) -> None:
    """Start a sink, write one list of records with it, stop it (its own event loop)."""

    async def run() -> None:
        await sink.start()
        try:
            await sink.write(records, generation=0)
        finally:
            await sink.stop()

    asyncio.run(run())
