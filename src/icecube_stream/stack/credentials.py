"""Who may do what in the secured local stack (`stack up --secure`), and their secrets.

Each Kafka user is a SCRAM-SHA-512 credential created when the storage is formatted, with the
least the component needs (ACLs under the StandardAuthorizer): the worker reads pulses and
writes predictions and dead letters, the emitter only writes pulses, the operator reads what the
operator's commands read. `admin` is the broker's own identity and the stack owner's, and the
one user of MLflow (its basic-auth app) and of FerretDB (whose 1.24 has no roles). Passwords
and the model-server token are random, made once, kept in files only their owner can read, and
reach processes as ICECUBE_*_FILE variables; the exceptions, where a server reads a secret from
one variable only, are named where they are set.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not in __all__
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)
from pydantic import SecretStr

from icecube_stream.config import Settings
from icecube_stream.wire.topics import ALERTS, DLQ, PREDICTIONS, PULSES

ADMIN = "admin"
USERS = (ADMIN, "worker", "emitter", "operator")
BROKER_CERT = "kafka-broker"


def secrets_dir(settings: Settings) -> Path:
    return settings.state_dir / "secrets"


def secret_file(settings: Settings, name: str) -> Path:
    """The file holding secret `name` (a Kafka user's password, `model-server-token`), made
    with a random value on first use."""
    folder = secrets_dir(settings)
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path


def secret(settings: Settings, name: str) -> str:
    return secret_file(settings, name).read_text()


def ca_file(settings: Settings) -> Path:
    return settings.state_dir / "pki" / "ca.pem"


def as_user(settings: Settings, user: str) -> Settings:
    """Settings of a client acting as `user` on the secured stack, in this process: SASL_SSL
    with the stack's CA, the user's password and the model-server token."""
    return settings.model_copy(
        update={
            "kafka_security_protocol": "SASL_SSL",
            "kafka_username": user,
            "kafka_ca_file": ca_file(settings),
            "kafka_password": SecretStr(secret(settings, f"kafka-{user}")),
            "model_server_token": SecretStr(secret(settings, "model-server-token")),
            "mlflow_username": ADMIN,
            "mlflow_password": SecretStr(secret(settings, "mlflow-admin")),
            "mongo_username": ADMIN,
            "mongo_password": SecretStr(secret(settings, f"mongo-{ADMIN}")),
            "mongo_tls": True,
            "mongo_ca_file": ca_file(settings),
        }
    )


def user_env(settings: Settings, user: str) -> dict[str, str]:
    """The environment of a child process acting as `user`: the same, with each secret as a
    file name (ICECUBE_*_FILE), so no secret is an environment value."""
    return {
        "ICECUBE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ICECUBE_KAFKA_USERNAME": user,
        "ICECUBE_KAFKA_CA_FILE": str(ca_file(settings)),
        "ICECUBE_KAFKA_PASSWORD_FILE": str(secret_file(settings, f"kafka-{user}")),
        "ICECUBE_MODEL_SERVER_TOKEN_FILE": str(secret_file(settings, "model-server-token")),
        "ICECUBE_MONGO_USERNAME": ADMIN,
        "ICECUBE_MONGO_PASSWORD_FILE": str(secret_file(settings, f"mongo-{ADMIN}")),
        "ICECUBE_MONGO_TLS": "true",
        "ICECUBE_MONGO_CA_FILE": str(ca_file(settings)),
        **mlflow_env(settings),
    }


def mlflow_env(settings: Settings) -> dict[str, str]:
    """MLflow's basic-auth user of the secured stack, the password by file."""
    return {
        "ICECUBE_MLFLOW_USERNAME": ADMIN,
        "ICECUBE_MLFLOW_PASSWORD_FILE": str(secret_file(settings, "mlflow-admin")),
    }


@dataclass(frozen=True)
class Grant:
    user: str
    resource: ResourceType
    name: str
    pattern: ResourcePatternType
    operations: tuple[AclOperation, ...]

    def bindings(self) -> list[AclBinding]:
        return [
            AclBinding(
                self.resource,
                self.name,
                self.pattern,
                f"User:{self.user}",
                "*",
                operation,
                AclPermissionType.ALLOW,
            )
            for operation in self.operations
        ]


def grants(settings: Settings) -> list[Grant]:
    """Every ACL of the secured stack. Topic names are prefixes (a test's private topics start
    with the declared name's prefixed form too)."""
    read, write, describe = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE
    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    prefixed, literal = ResourcePatternType.PREFIXED, ResourcePatternType.LITERAL
    app = settings.worker_app_id
    return [
        Grant("worker", topic, settings.topic(PULSES), literal, (read, describe)),
        Grant("worker", topic, settings.topic(PREDICTIONS), literal, (write, describe)),
        Grant("worker", topic, settings.topic(DLQ), literal, (write, describe)),
        # Read: after a crash the worker looks on the topic for an alert it may have sent.
        Grant("worker", topic, settings.topic(ALERTS), literal, (write, read, describe)),
        # Faust's own topics (the assignor's leader topic) and the consumer group.
        Grant("worker", topic, app, prefixed, (AclOperation.ALL,)),
        Grant("worker", group, app, prefixed, (read, describe)),
        Grant("emitter", topic, settings.topic(PULSES), literal, (write, describe)),
        Grant("operator", topic, settings.topic(PREDICTIONS), literal, (read, describe)),
        Grant("operator", topic, settings.topic(DLQ), literal, (read, describe)),
        Grant("operator", topic, settings.topic(ALERTS), literal, (read, describe)),
        Grant("operator", topic, settings.topic(PULSES), literal, (write, describe)),  # replay
        Grant("operator", group, "reader-", prefixed, (read,)),
        Grant("operator", group, f"{app}-dlq-replay-", prefixed, (read, describe)),
    ]


def bindings(settings: Settings) -> list[AclBinding]:
    """Every ACL binding of `grants`, as Kafka's admin API takes them."""
    return [binding for grant in grants(settings) for binding in grant.bindings()]
