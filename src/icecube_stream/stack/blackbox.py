"""The blackbox exporter from Debian's package: Prometheus probes the services that export no
metrics of their own (Kafka, MongoDB, MLflow), so each outage has an alert that names it.

The probes themselves (which address, which module) are scrape targets that the Prometheus
service writes (`probe_targets`); this process only answers /probe.
"""

from __future__ import annotations

from icecube_stream.stack.service import Service, answers_ok, apt_install


class Blackbox(Service):
    name = "blackbox"

    @property
    def ports(self) -> list[int]:
        return [self.settings.blackbox_port]

    @property
    def endpoint(self) -> str:
        return f"http://{self.settings.host}:{self.settings.blackbox_port}"

    def install(self) -> None:
        apt_install(self.settings, "prometheus-blackbox-exporter", "prometheus-blackbox-exporter")

    def argv(self) -> list[str]:
        return [
            "prometheus-blackbox-exporter",
            f"--config.file={self.settings.deploy_dir / 'prometheus' / 'blackbox.yml'}",
            f"--web.listen-address={self.settings.host}:{self.settings.blackbox_port}",
        ]

    def healthy(self) -> bool:
        return answers_ok(f"{self.endpoint}/-/healthy")
