"""The one settings class: every endpoint, port, path and pinned version.

Values come from environment variables prefixed ``ICECUBE_`` (the same names are used by
compose and Kubernetes), so a test or a second stack changes a port without touching code.
A secret may instead come from a file named by ``ICECUBE_<NAME>_FILE``, as compose secrets and
Kubernetes Secret volumes provide them; never from the command line.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "ICECUBE_"


class FileSecretsSource(PydanticBaseSettingsSource):
    """``ICECUBE_<NAME>_FILE=/run/secrets/x``: the setting is the file's content, trailing
    newline dropped. An unreadable file is an error naming the variable, not a silent default."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = f"{ENV_PREFIX}{field_name.upper()}_FILE"
        path = os.environ.get(variable)
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text().rstrip("\r\n"), field_name, False
        except OSError as error:
            raise ValueError(f"{variable}: cannot read {path}: {error.strerror}") from None

    def __call__(self) -> dict[str, Any]:
        found = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                found[name] = value
        return found


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then ICECUBE_* variables, then ICECUBE_*_FILE contents."""
        return init_settings, env_settings, FileSecretsSource(settings_cls)

    host: str = Field("127.0.0.1", description="Address every local service binds to.")
    # Where clients reach each service; unset means `host` (one machine). Containers bind to
    # 0.0.0.0 and reach their peers by service name (compose, Kubernetes), so these differ there.
    kafka_host: str | None = Field(None, description="Kafka bootstrap host (default: host).")
    mongo_host: str | None = Field(None, description="MongoDB host (default: host).")
    mlflow_host: str | None = Field(None, description="MLflow server host (default: host).")
    model_server_host: str | None = Field(None, description="Model server host (default: host).")
    prometheus_host: str | None = Field(None, description="Prometheus host (default: host).")
    state_dir: Path = Field(
        Path.home() / ".local" / "state" / "icecube-stream",
        description="Runtime state of the local stack: data directories, logs, pid files.",
    )
    skymap_url: str | None = Field(
        None,
        description="Where alert sky maps are stored: a folder or an fsspec URL (s3://bucket/"
        "prefix with s3fs installed); default: skymaps/ in state_dir.",
    )
    deploy_dir: Path = Field(
        Path(__file__).resolve().parents[2] / "deploy",
        description="Checked-in service configuration (Prometheus rules, dashboards, manifests).",
    )
    topics_dir: Path = Field(
        Path(__file__).resolve().parent / "wire" / "topics",
        description="Topic definitions and Avro schemas (topics.yaml, schemas/); shipped with the "
        "package.",
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "icecube-stream",
        description="Downloads and builds (Kafka jars, FerretDB), shared by every checkout.",
    )

    kafka_version: str = Field("4.4.0", description="Apache Kafka broker version (Maven).")
    kafka_brokers: int = Field(
        1,
        ge=1,
        le=4,  # node 5's controller port would be the emitter's metrics port, 9101
        description="Nodes of the local KRaft cluster, each a broker and a controller; node n "
        "listens on kafka_port + 2(n-1) and its controller one port above. `stack up --brokers 3` "
        "sets it, and the cluster remembers it.",
    )
    kafka_netns: bool = Field(
        False,
        description="Run each Kafka node in a network namespace of its own at "
        "<kafka_netns_subnet>.n (same ports on every node), so one can be cut off from the others "
        "and the clients (`stack up --brokers 3 --netns`; needs root).",
    )
    kafka_netns_subnet: str = "10.77.0"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every client reaches Kafka: PLAINTEXT (the local stack's default), SSL "
        "(TLS, optionally with a client certificate) or SASL_SSL (TLS and a SCRAM user).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512"] = "SCRAM-SHA-512"
    stack_secure: bool = Field(
        False,
        description="The local stack secured: Kafka on SASL_SSL with SCRAM users and ACLs, the "
        "model server with a token (`stack up --secure`); fixed when Kafka's storage is first "
        "made, like --brokers.",
    )
    kafka_username: str | None = Field(None, description="SCRAM user (SASL_SSL).")
    kafka_password: SecretStr | None = Field(None, description="SCRAM password (SASL_SSL).")
    kafka_ca_file: Path | None = Field(
        None, description="PEM of the CA that signed the brokers' certificates (SSL, SASL_SSL)."
    )
    kafka_cert_file: Path | None = Field(None, description="Client certificate, PEM (mTLS).")
    kafka_key_file: Path | None = Field(None, description="Client private key, PEM (mTLS).")
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"

    ferretdb_version: str = "v1.24.2"
    mongo_port: int = 27017
    mongo_database: str = "icecube"
    mongo_username: str | None = Field(None, description="MongoDB user (unset: no auth).")
    mongo_password: SecretStr | None = Field(None, description="MongoDB password.")
    mongo_tls: bool = Field(False, description="Connect to MongoDB over TLS.")
    mongo_ca_file: Path | None = Field(
        None, description="PEM of the CA that signed MongoDB's certificate (with mongo_tls)."
    )
    mlflow_username: str | None = Field(None, description="MLflow basic-auth user.")
    mlflow_password: SecretStr | None = Field(None, description="MLflow basic-auth password.")

    prometheus_port: int = 9090
    mlflow_port: int = 5000
    model_server_port: int = 3000
    worker_web_port: int = 6066
    emitter_metrics_port: int = Field(
        9101, description="/metrics of `icecube-stream produce` (0: none); a busy port is skipped."
    )
    checker_metrics_port: int = Field(
        9102, description="/metrics of `icecube-stream check-truth` (angular error vs truth)."
    )
    alertmanager_port: int = Field(
        9103, description="Alertmanager (its usual 9093 is the first Kafka controller's port)."
    )
    blackbox_port: int = Field(
        9115, description="The blackbox exporter, which probes Kafka, MongoDB and MLflow."
    )
    alert_webhook_url: SecretStr | None = Field(
        None,
        description="Where the local Alertmanager posts notifications (its webhook format); "
        "unset, alerts are only shown at the Alertmanager's page. A secret: such URLs often "
        "carry a token.",
    )
    runbook_base_url: str = Field(
        (Path(__file__).resolve().parents[2] / "docs" / "operations.md").as_uri(),
        description="Each alert's runbook_url is this plus #<alert name>; set it to where your "
        "deployment publishes docs/operations.md.",
    )

    topic_prefix: str = Field(
        "", description="Put in front of every topic name, to run isolated pipelines side by side."
    )
    frame_max_events: int = Field(128, ge=1, description="Events per pulse frame (message).")
    frame_max_pulses: int = Field(
        32_768, ge=1, description="Pulses per frame; a larger event is split into parts."
    )
    max_event_pulses: int = Field(
        50_000, ge=1, description="Events with more pulses go to the dead-letter topic."
    )
    n_sensors: int = Field(5160, description="Sensor ids outside 0..n_sensors-1 are rejected.")
    max_event_span_ns: int = Field(
        1_000_000, ge=1, description="Events whose pulses span more ns than this are rejected."
    )

    worker_app_id: str = Field("icecube-worker", description="Faust app id = consumer group.")
    worker_take_messages: int = Field(32, ge=1, description="Frames handled per worker step.")
    worker_take_within_s: float = Field(0.05, description="Longest wait to fill a worker step.")
    worker_concurrency: int = Field(
        3, ge=1, description="Steps a worker runs at once, so model calls and writes overlap."
    )
    assembly_timeout_s: float = Field(
        30.0, description="A split event still missing parts after this is predicted incomplete."
    )
    mongo_collection: str = "predictions"
    alert_min_track_probability: float = Field(
        0.5, ge=0.0, le=1.0, description="Alert policy: least track probability of the model."
    )
    alert_min_charge: float = Field(
        1000.0, ge=0.0, description="Alert policy: least total charge (p.e.), the energy proxy."
    )
    alert_max_radius90_deg: float = Field(
        5.0, gt=0.0, description="Alert policy: largest 90 % containment radius (degrees)."
    )
    trigger_rate_hz: float = Field(
        2700.0, gt=0.0, description="The detector's trigger rate the alert FAR estimate assumes."
    )
    model_batch_events: int = Field(256, ge=1, description="Events per model-server request.")
    model_concurrency: int = Field(
        3, ge=1, description="Model-server requests a worker keeps in flight at once."
    )
    model_timeout_s: float = Field(30.0, description="One model-server request's time limit.")
    model_retry_max_s: float = Field(
        60.0, description="Back-off budget of one call on 429/503/504 before it fails loudly."
    )

    health_timeout_s: float = Field(120.0, description="How long `stack up` waits per service.")

    mlflow_experiment: str = Field("icecube-direction", description="Experiment of training runs.")
    model_name: str = Field("icecube-direction", description="Registered model in MLflow.")
    model_alias: str = Field("champion", description="Alias of the model version that serves.")
    torch_threads: int = Field(2, description="Intra-op threads for training and inference.")

    model_uri: str | None = Field(
        None,
        description="Serve this MLflow model URI or local model directory instead of the alias.",
    )
    model_server_timeout_s: float = Field(
        20.0, gt=0, description="Model server answers 504 when a request takes longer than this."
    )
    model_server_max_concurrency: int = Field(
        8, ge=1, description="Requests in flight per model server; the next one gets 429."
    )
    model_server_max_body_bytes: int = Field(
        32 * 1024 * 1024, ge=1, description="Larger /predict bodies are refused with 413."
    )
    model_server_token: SecretStr | None = Field(
        None,
        description="Bearer token that POST /reload (any route that changes the server's state) "
        "requires; unset, those routes are refused. Never logged.",
    )
    model_server_torch_threads: int = Field(
        1,
        ge=1,
        description="Intra-op threads of the model server; 1 because a busy host (the stream "
        "worker beside it) makes spinning torch threads 10x slower, measured in docs/model-api.md.",
    )
    model_reload_poll_s: float = Field(
        30.0, ge=0, description="Seconds between alias checks by the model server (0: never)."
    )
    bento_dir: Path = Field(
        Path(__file__).resolve().parents[2] / "bento",
        description="The BentoML service (service.py, bentofile.yaml) that `bentoml serve` runs.",
    )

    def kafka_node(self, node: int) -> tuple[str, int, int]:
        """(address, client port, controller port) of cluster node `node`, counted from 1."""
        if self.kafka_netns:
            return f"{self.kafka_netns_subnet}.{node}", self.kafka_port, self.kafka_controller_port
        step = 2 * (node - 1)
        host = self.kafka_host or self.host
        return host, self.kafka_port + step, self.kafka_controller_port + step

    @property
    def kafka_bootstrap(self) -> str:
        """Every node, so a client starting while one is down still finds the cluster."""
        nodes = [self.kafka_node(n) for n in range(1, self.kafka_brokers + 1)]
        return ",".join(f"{host}:{port}" for host, port, _ in nodes)

    def topic(self, name: str) -> str:
        """The Kafka name of a topic declared in topics/topics.yaml."""
        return self.topic_prefix + name

    @property
    def model_server_url(self) -> str:
        return f"http://{self.model_server_host or self.host}:{self.model_server_port}"

    @property
    def worker_metrics_url(self) -> str:
        return f"http://{self.host}:{self.worker_web_port}/metrics"

    @property
    def mongo_url(self) -> str:
        return f"mongodb://{self.mongo_host or self.host}:{self.mongo_port}/"

    @property
    def mongo_alerts_collection(self) -> str:
        """One document per alert, what was sent and whether it was: beside the predictions,
        so every pipeline with a collection of its own has its own."""
        return f"{self.mongo_collection}_alerts"

    @property
    def skymap_base_url(self) -> str:
        """The folder or object-store prefix alert sky maps are written under."""
        return self.skymap_url or str(self.state_dir / "skymaps")

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.prometheus_host or self.host}:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{self.host}:{self.alertmanager_port}"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"http://{self.mlflow_host or self.host}:{self.mlflow_port}"


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ICECUBE_* variables, so a child process sees exactly these values.

    Secrets are left out: a child gets them the way its parent did (an inherited variable, or an
    ICECUBE_*_FILE it is given), so no secret is ever written into an environment from here.
    """
    return {
        f"{ENV_PREFIX}{name.upper()}": str(value)
        for name, value in settings.model_dump().items()
        if value is not None and not isinstance(value, SecretStr)
    }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process from the environment."""
    return Settings()
