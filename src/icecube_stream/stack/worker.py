"""The Faust worker as a supervised process of the local stack (started only when named)."""

from __future__ import annotations

import sys

from icecube_stream.stack import credentials
from icecube_stream.stack.service import Service, answers_ok


class Worker(Service):
    name = "worker"
    infrastructure = False

    @property
    def ports(self) -> list[int]:
        return [self.settings.worker_web_port]

    @property
    def endpoint(self) -> str:
        return self.settings.worker_metrics_url

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "faust", "-A", "icecube_stream.app", "worker", "-l", "info"]

    def env(self) -> dict[str, str]:
        """Secured: the worker's own Kafka user and the model-server token, by file."""
        secured = (
            credentials.user_env(self.settings, "worker") if self.settings.stack_secure else {}
        )
        return {**super().env(), **secured}

    def healthy(self) -> bool:
        return answers_ok(self.endpoint)
