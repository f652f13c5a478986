"""Alertmanager from Debian's package: Prometheus' alerts, grouped, to a webhook when one is set.

Its configuration is written at every start from the settings, so a test (or an operator) points
notifications at a receiver of its own with ICECUBE_ALERT_WEBHOOK_URL. Clustering is off: its
default gossip port, 9094, is the second Kafka node's.
"""

from __future__ import annotations

import yaml

from icecube_stream.stack.service import Service, answers_ok, apt_install

#: Fast enough that a test sees a notification within a minute of the alert firing.
ROUTE = {"group_by": ["alertname", "component"], "group_wait": "10s",
         "group_interval": "1m", "repeat_interval": "4h"}  # fmt: skip


class Alertmanager(Service):
    name = "alertmanager"

    @property
    def ports(self) -> list[int]:
        return [self.settings.alertmanager_port]

    @property
    def endpoint(self) -> str:
        return self.settings.alertmanager_url

    def install(self) -> None:
        apt_install(self.settings, "prometheus-alertmanager", "prometheus-alertmanager")

    def prepare(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        receiver: dict[str, object] = {"name": "default"}
        webhook = self.settings.alert_webhook_url
        if webhook is not None:
            receiver["webhook_configs"] = [
                {"url": webhook.get_secret_value(), "send_resolved": True}
            ]
        config = {"route": {"receiver": "default", **ROUTE}, "receivers": [receiver]}
        path = self.state_dir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)  # the webhook URL may carry a token

    def argv(self) -> list[str]:
        return [
            "prometheus-alertmanager",
            f"--config.file={self.state_dir / 'alertmanager.yml'}",
            f"--storage.path={self.state_dir / 'data'}",
            f"--web.listen-address={self.settings.host}:{self.settings.alertmanager_port}",
            "--cluster.listen-address=",
        ]

    def healthy(self) -> bool:
        return answers_ok(f"{self.endpoint}/-/ready")
