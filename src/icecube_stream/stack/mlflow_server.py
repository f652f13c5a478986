"""MLflow tracking server and model registry: SQLite backend, artifacts on local disk; on the
secured stack behind MLflow's basic-auth app."""

from __future__ import annotations

import sys
from pathlib import Path

from icecube_stream.stack import credentials
from icecube_stream.stack.service import Service, answers_ok


class MlflowServer(Service):
    name = "mlflow"

    @property
    def ports(self) -> list[int]:
        return [self.settings.mlflow_port]

    @property
    def endpoint(self) -> str:
        return self.settings.mlflow_tracking_uri

    @property
    def auth_config(self) -> Path:
        return self.state_dir / "basic_auth.ini"

    def prepare(self) -> None:
        (self.state_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        if self.settings.stack_secure:
            self._write_auth_config()

    def _write_auth_config(self) -> None:
        """MLflow's basic-auth app: the admin user (made on the first start with this
        password), and read-only access for other authenticated users."""
        password = credentials.secret(self.settings, "mlflow-admin")
        self.auth_config.write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = sqlite:///{self.state_dir / 'basic_auth.db'}\n"
            f"admin_username = {credentials.ADMIN}\n"
            f"admin_password = {password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        self.auth_config.chmod(0o600)

    def argv(self) -> list[str]:
        secured = ["--app-name", "basic-auth"] if self.settings.stack_secure else []
        return [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.state_dir / 'mlflow.db'}",
            "--artifacts-destination", str(self.state_dir / "artifacts"),
            "--host", self.settings.host,
            "--port", str(self.settings.mlflow_port),
            "--workers", "1",
            *secured,
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        # The server's background job runner (GenAI features) costs ~2 GB and is not used here.
        env = {**super().env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        if self.settings.stack_secure:
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(self.auth_config)
            # The auth app's CSRF key: MLflow reads it from this variable only (the one secret
            # given as a value; docs/security.md).
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = credentials.secret(self.settings, "mlflow-csrf")
        return env

    def healthy(self) -> bool:
        return answers_ok(f"{self.endpoint}/health")
