"""MLflow tracking server and model registry: SQLite backend, artifacts on local disk."""

from __future__ import annotations

import sys

import httpx

from icecube_stream.stack.service import Service


class MlflowServer(Service):
    name = "mlflow"

    @property
    def ports(self) -> list[int]:
        return [self.settings.mlflow_port]

    @property
    def endpoint(self) -> str:
        return self.settings.mlflow_tracking_uri

    def prepare(self) -> None:
        (self.state_dir / "artifacts").mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.state_dir / 'mlflow.db'}",
            "--artifacts-destination", str(self.state_dir / "artifacts"),
            "--host", self.settings.host,
            "--port", str(self.settings.mlflow_port),
            "--workers", "1",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        # The server's background job runner (GenAI features) costs ~2 GB and is not used here.
        return {**super().env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.endpoint}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
