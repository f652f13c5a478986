"""Prometheus from Debian's package, configured from deploy/prometheus/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from icecube_stream.config import Settings
from icecube_stream.stack.service import Service, answers_ok, apt_install


def scrape_targets(settings: Settings) -> dict[str, str]:
    """component -> host:port of every /metrics endpoint the local stack knows of."""
    host = settings.host
    return {
        "prometheus": f"{host}:{settings.prometheus_port}",
        "worker": f"{host}:{settings.worker_web_port}",
        "model-server": f"{host}:{settings.model_server_port}",
        "emitter": f"{host}:{settings.emitter_metrics_port}",
        "checker": f"{host}:{settings.checker_metrics_port}",
        "alertmanager": f"{host}:{settings.alertmanager_port}",
        "blackbox": f"{host}:{settings.blackbox_port}",
    }


def probe_targets(settings: Settings) -> list[tuple[str, str, str]]:
    """(component, probed address, blackbox module) of each service without /metrics of its
    own: every Kafka node, MongoDB and MLflow's /health."""
    nodes = [settings.kafka_node(n) for n in range(1, settings.kafka_brokers + 1)]
    return [
        *(("kafka", f"{host}:{port}", "tcp_connect") for host, port, _ in nodes),
        ("mongo", f"{settings.mongo_host or settings.host}:{settings.mongo_port}", "tcp_connect"),
        ("mlflow", f"{settings.mlflow_tracking_uri}/health", "http_2xx"),
    ]


def file_sd(component: str, address: str) -> str:
    """A file-based service discovery document for one target."""
    return json.dumps([{"targets": [address], "labels": {"component": component}}], indent=2)


def probe_sd(settings: Settings) -> str:
    """The probes as targets of the blackbox exporter, each labelled with what it probes."""
    blackbox = f"{settings.host}:{settings.blackbox_port}"
    groups = [
        {"targets": [blackbox], "labels": {"component": component, "instance": target,
                                           "__param_target": target, "__param_module": module}}
        for component, target, module in probe_targets(settings)
    ]  # fmt: skip
    return json.dumps(groups, indent=2)


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
        apt_install(self.settings, "prometheus", "prometheus")

    def prepare(self) -> None:
        """Copy the checked-in configuration and write this stack's targets beside it."""
        shutil.copytree(
            self.settings.deploy_dir / "prometheus", self.config_dir, dirs_exist_ok=True
        )
        targets = self.config_dir / "targets"
        targets.mkdir(exist_ok=True)
        for component, address in scrape_targets(self.settings).items():
            (targets / f"{component}.json").write_text(file_sd(component, address))
        (self.config_dir / "probes.json").write_text(probe_sd(self.settings))
        alertmanager = f"{self.settings.host}:{self.settings.alertmanager_port}"
        (self.config_dir / "alertmanagers.json").write_text(file_sd("alertmanager", alertmanager))

    def argv(self) -> list[str]:
        return [
            "prometheus",
            f"--config.file={self.config_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.state_dir / 'data'}",
            f"--web.listen-address={self.settings.host}:{self.settings.prometheus_port}",
            "--web.enable-lifecycle",
            "--enable-feature=expand-external-labels",  # the runbook base URL from the settings
            "--storage.tsdb.retention.time=7d",
        ]

    def healthy(self) -> bool:
        return answers_ok(f"{self.endpoint}/-/ready")
