"""What every local service has: ports, files under the state directory, install, health."""

from __future__ import annotations

import os
import shutil
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import httpx

from icecube_stream.config import Settings, settings_env
from icecube_stream.stack.ports import is_listening


class StackError(RuntimeError):
    """A problem an operator can act on; the message says which service and what to do."""


class Service(ABC):
    #: The service's name; an instance may narrow it (`kafka-2`, the second node of a cluster).
    name: str
    #: Infrastructure starts with a plain `stack up`; pipeline components only when named.
    infrastructure: ClassVar[bool] = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def host(self) -> str:
        """The address the service listens on."""
        return self.settings.host

    def listening(self) -> list[int]:
        """The service's ports that something listens on now (it, or another program)."""
        return [port for port in self.ports if is_listening(self.host, port)]

    @property
    @abstractmethod
    def ports(self) -> list[int]:
        """Every port the service listens on; the first one is its endpoint."""

    @property
    @abstractmethod
    def endpoint(self) -> str: ...

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir / self.name

    @property
    def log_path(self) -> Path:
        return self.settings.state_dir / "logs" / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.settings.state_dir / "run" / f"{self.name}.pid"

    def install(self) -> None:
        """Make sure the binaries exist (cached outside the checkout); idempotent."""

    def prepare(self) -> None:
        """Render configuration and initialise storage before a start; idempotent."""

    @abstractmethod
    def argv(self) -> list[str]: ...

    def env(self) -> dict[str, str]:
        """Environment of the process: these settings, so it sees the same ports and paths."""
        return settings_env(self.settings)

    @abstractmethod
    def healthy(self) -> bool:
        """One quick, real health probe (a protocol request, not just an open port)."""

    def configure(self) -> None:
        """What the running service needs once healthy (Kafka's ACLs); idempotent."""


def run_logged(argv: list[str], log_path: Path, what: str, cwd: Path | None = None) -> None:
    """Run an install step; on failure raise with the tail of its output."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, check=False)
    if result.returncode != 0:
        lines = log_path.read_text(errors="replace").splitlines()[-25:]
        raise StackError(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n"
            f"last lines of {log_path}:\n" + "\n".join(lines)
        )


def apt_install(settings: Settings, package: str, binary: str) -> None:
    """Install a Debian package unless its binary is on PATH (root only: say what to run)."""
    if shutil.which(binary):
        return
    if os.geteuid() != 0:
        raise StackError(f"{binary} is not installed: run `sudo apt-get install {package}`")
    log = settings.cache_dir / f"apt-{package}.log"
    run_logged(["apt-get", "update", "-q"], log, "apt-get update")
    run_logged(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
        log,
        f"installing {package} with apt-get",
    )


def answers_ok(url: str) -> bool:
    """A health probe over HTTP: 200 within 2 s."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
