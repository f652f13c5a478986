"""Prometheus from Debian's package, configured from deploy/prometheus/."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx

from icecube_stream.config import Settings
from icecube_stream.stack.service import Service, StackError, run_logged


def scrape_targets(settings: Settings) -> dict[str, str]:
    """component -> host:port of every /metrics endpoint the local stack knows of."""
    host = settings.host
    return {
        "prometheus": f"{host}:{settings.prometheus_port}",
        "worker": f"{host}:{settings.worker_web_port}",
        "model-server": f"{host}:{settings.model_server_port}",
        "emitter": f"{host}:{settings.emitter_metrics_port}",
        "checker": f"{host}:{settings.checker_metrics_port}",
    }


def file_sd(component: str, address: str) -> str:
    """A file-based service discovery document for one target."""
    return json.dumps([{"targets": [address], "labels": {"component": component}}], indent=2)


class Prometheus(Service):
    name = "prometheus"

    @property
    def ports(self) -> list[int]:
        return [self.settings.prometheus_port]

    @property
    def endpoint(self) -> str:
        return self.settings.prometheus_url

    @property
    def config_dir(self) -> Path:
        return self.state_dir / "config"

    def install(self) -> None:
        if shutil.which("prometheus"):
            return
        if os.geteuid() != 0:
            raise StackError(
                "prometheus is not installed: run `sudo apt-get install prometheus` and retry"
            )
        log = self.settings.cache_dir / "apt-prometheus.log"
        run_logged(["apt-get", "update", "-q"], log, "apt-get update")
        run_logged(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"],
            log,
            "installing prometheus with apt-get",
        )

    def prepare(self) -> None:
        """Copy the checked-in configuration and write this stack's targets beside it."""
        shutil.copytree(
            self.settings.deploy_dir / "prometheus", self.config_dir, dirs_exist_ok=True
        )
        targets = self.config_dir / "targets"
        targets.mkdir(exist_ok=True)
        for component, address in scrape_targets(self.settings).items():
            (targets / f"{component}.json").write_text(file_sd(component, address))

    def argv(self) -> list[str]:
        return [
            "prometheus",
            f"--config.file={self.config_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.state_dir / 'data'}",
            f"--web.listen-address={self.settings.host}:{self.settings.prometheus_port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=7d",
        ]

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.endpoint}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
