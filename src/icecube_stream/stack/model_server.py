"""The BentoML model server as a stack service: `stack up --only model-server`.

It is a pipeline component, not infrastructure: it needs a champion in the registry, so a plain
`stack up` does not start it. Healthy means /readyz answers 200, i.e. a model is loaded and warm.
The child gets every setting as an ICECUBE_* variable, so a stack with private ports or model
name (tests, a second stack) starts a server that agrees with it.
"""

from __future__ import annotations

import sys

from icecube_stream.stack import credentials
from icecube_stream.stack.service import Service, answers_ok


class ModelServer(Service):
    name = "model-server"
    infrastructure = False

    @property
    def ports(self) -> list[int]:
        return [self.settings.model_server_port]

    @property
    def endpoint(self) -> str:
        return self.settings.model_server_url

    def prepare(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "bentoml", "serve", "service:DirectionService",
            "--working-dir", str(self.settings.bento_dir),
            "--host", self.settings.host,
            "--port", str(self.settings.model_server_port),
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        # BentoML keeps its home (bentos, models, Prometheus multiprocess files) per stack.
        env = {
            **super().env(),
            "BENTOML_HOME": str(self.state_dir / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
        }
        if self.settings.stack_secure:  # /predict and /reload need the token, read from a file
            token = credentials.secret_file(self.settings, "model-server-token")
            env["ICECUBE_MODEL_SERVER_TOKEN_FILE"] = str(token)
            env |= credentials.mlflow_env(self.settings)  # the registry needs a login
        return env

    def healthy(self) -> bool:
        return answers_ok(f"{self.endpoint}/readyz")
