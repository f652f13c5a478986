"""The secured compose deployment (compose.secure.yaml): its secret files, and its Kafka one-shot.

`generate` runs on the host, from the checkout, before the first `up`:

    uv run --frozen python -m icecube_stream.tools.compose_secure generate
    uv run --frozen python -m icecube_stream.tools.compose_secure generate --rotate kafka-worker

It writes every file compose.secure.yaml mounts as a secret into deploy/compose/secrets/
(git-ignored, never committed): random passwords and the model-server token, a CA with the
certificates of Kafka and MongoDB (stack/pki.py, as the local stack makes them), and the files
a server reads whole that carry a password (Kafka's JAAS file, the admin's client properties,
MLflow's basic-auth configuration). What exists is kept, so running it again changes nothing;
`--rotate NAME` makes NAME anew (a password's old value is kept in NAME.previous for the
rotation steps of docs/security.md). Values are never printed.

The folder is 700 and the mounted files in it 644: compose mounts a file secret as a bind mount
with the host file's owner and mode (the long syntax's uid/gid/mode are Swarm-only), and the
containers read them as different users (Kafka 1000, MongoDB 999, Grafana 472, our image
10001). The folder keeps other users of the host out; the CA's key (600) is never mounted.

`kafka-access` runs in the one-shot container of that name, as Kafka's `admin`:

    python -m icecube_stream.tools.compose_secure kafka-access

It sets every user's SCRAM-SHA-512 credential from its password file (the cluster is formatted
with `admin` only; this also applies a rotated password), then the ACLs of stack/credentials.py.
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not in __all__
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from pydantic import SecretStr

from icecube_stream.config import Settings, get_settings
from icecube_stream.connections import confluent_config
from icecube_stream.stack import credentials, pki

#: Where compose mounts the secrets in every container (the default target of `secrets:`).
MOUNT = Path("/run/secrets")
DEFAULT_DIR = Path("deploy") / "compose" / "secrets"

#: Random values, one file each; `kafka-<user>` for every SCRAM user of stack/credentials.py.
PASSWORDS: tuple[str, ...] = (
    *(f"kafka-{user}" for user in credentials.USERS),
    f"mongo-{credentials.ADMIN}",
    f"mlflow-{credentials.ADMIN}",
    "mlflow-csrf",  # MLflow's basic-auth app's CSRF key (MLFLOW_FLASK_SERVER_SECRET_KEY)
    "model-server-token",
    "grafana-admin",
)
CA = "ca.pem"
CA_KEY = "ca.key"
#: Server certificates (common name: the compose service names and the host's loopback names,
#: where published ports are reached). Each is mounted as `<name>.bundle.pem`, key and
#: certificate in one file, the form Kafka's PEM key store and mongod's --tlsCertificateKeyFile
#: read.
CERTIFICATES: dict[str, tuple[str, ...]] = {
    credentials.BROKER_CERT: ("kafka", "localhost", "127.0.0.1"),
    "mongo": ("mongo", "localhost", "127.0.0.1"),
}
KAFKA_JAAS = "kafka-jaas.conf"
KAFKA_ADMIN_PROPERTIES = "kafka-admin.properties"
MLFLOW_AUTH = "mlflow-basic-auth.ini"
#: ICECUBE_* file names (no value) for a CLI on the host; not a secret, never mounted.
HOST_ENV = "host.env"
#: The MLflow container's volume, where the basic-auth app keeps its users.
MLFLOW_AUTH_DB = "/var/lib/icecube/mlflow/basic_auth.db"
SCRAM_ITERATIONS = 8192
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required"


def bundle(common_name: str) -> str:
    return f"{common_name}.bundle.pem"


def mounted_names() -> list[str]:
    """Every file that compose.secure.yaml may mount as a secret, i.e. that `generate` writes."""
    return [
        *PASSWORDS,
        CA,
        *(bundle(name) for name in CERTIFICATES),
        KAFKA_JAAS,
        KAFKA_ADMIN_PROPERTIES,
        MLFLOW_AUTH,
    ]


def rotatable_names() -> list[str]:
    return [*PASSWORDS, "ca", *CERTIFICATES]


def _read(path: Path) -> str:
    return path.read_text().rstrip("\r\n")


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """In place (same inode): a running container's bind mount sees the new content."""
    path.write_text(text)
    path.chmod(mode)


def _rotate(folder: Path, name: str) -> None:
    if name in PASSWORDS:
        path = folder / name
        if path.exists():
            _write(folder / f"{name}.previous", _read(path), 0o600)
            _write(path, secrets.token_urlsafe(24))
    elif name == "ca":
        for stale in [folder / CA, *(folder / f"{cn}.pem" for cn in CERTIFICATES)]:
            stale.unlink(missing_ok=True)
    elif name in CERTIFICATES:
        (folder / f"{name}.pem").unlink(missing_ok=True)
    else:
        raise ValueError(f"cannot rotate {name!r}: one of {', '.join(rotatable_names())}")


def generate(folder: Path, rotate: Iterable[str] = ()) -> list[Path]:
    """Make what is missing under `folder` (and anew what `rotate` names); the mounted files."""
    rotate = list(rotate)
    for name in rotate:
        if name not in rotatable_names():
            raise ValueError(f"cannot rotate {name!r}: one of {', '.join(rotatable_names())}")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for name in rotate:
        _rotate(folder, name)
    for name in PASSWORDS:
        if not (folder / name).exists():
            _write(folder / name, secrets.token_urlsafe(24))
    authority = pki.Authority(folder)  # the CA: made once, kept (ca.key stays 600)
    for common_name, addresses in CERTIFICATES.items():
        authority.issue(common_name, addresses)
        (folder / bundle(common_name)).chmod(0o644)
    (folder / CA).chmod(0o644)
    admin = _read(folder / f"kafka-{credentials.ADMIN}")
    _write(folder / KAFKA_JAAS, kafka_jaas(admin))
    _write(folder / KAFKA_ADMIN_PROPERTIES, kafka_client_properties(credentials.ADMIN, admin))
    _write(folder / MLFLOW_AUTH, mlflow_auth_config(_read(folder / f"mlflow-{credentials.ADMIN}")))
    _write(folder / HOST_ENV, host_env(folder.resolve()))
    return [folder / name for name in mounted_names()]


def kafka_jaas(admin_password: str) -> str:
    """The broker's JAAS file: the SCRAM login its SASL_SSL listeners use between brokers."""
    return (
        "KafkaServer {\n"
        f"  {SCRAM_LOGIN}\n"
        f'  username="{credentials.ADMIN}"\n'
        f'  password="{admin_password}";\n'
        "};\n"
    )


def kafka_client_properties(user: str, password: str) -> str:
    """Kafka's own tools (the broker's health check, kafka-configs) as `user`, over SASL_SSL."""
    return (
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        f'sasl.jaas.config={SCRAM_LOGIN} username="{user}" password="{password}";\n'
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={MOUNT / CA}\n"
    )


def mlflow_auth_config(admin_password: str) -> str:
    """MLflow's basic-auth app, as the local stack configures it: `admin` (made on the first
    start with this password) writes, other authenticated users read."""
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{MLFLOW_AUTH_DB}\n"
        f"admin_username = {credentials.ADMIN}\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


def host_env(folder: Path) -> str:
    """ICECUBE_* variables for a CLI on the host against the published ports: file names only.
    Kafka as `operator` (tail, dlq); an admin command takes ICECUBE_KAFKA_USERNAME=admin and
    the admin's file instead."""
    variables = {
        "ICECUBE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ICECUBE_KAFKA_USERNAME": "operator",
        "ICECUBE_KAFKA_PASSWORD_FILE": folder / "kafka-operator",
        "ICECUBE_KAFKA_CA_FILE": folder / CA,
        "ICECUBE_MONGO_USERNAME": credentials.ADMIN,
        "ICECUBE_MONGO_PASSWORD_FILE": folder / f"mongo-{credentials.ADMIN}",
        "ICECUBE_MONGO_TLS": "true",
        "ICECUBE_MONGO_CA_FILE": folder / CA,
        "ICECUBE_MLFLOW_USERNAME": credentials.ADMIN,
        "ICECUBE_MLFLOW_PASSWORD_FILE": folder / f"mlflow-{credentials.ADMIN}",
        "ICECUBE_MODEL_SERVER_TOKEN_FILE": folder / "model-server-token",
    }
    lines = [f"{name}={shlex.quote(str(value))}" for name, value in variables.items()]
    header = "# set -a; . deploy/compose/secrets/host.env; set +a  (file names only, no secret)\n"
    return header + "\n".join(lines) + "\n"


def kafka_access(
    settings: Settings,
    secrets_dir: Path = MOUNT,
    login_password: str | None = None,
    admin_client: Callable[[dict[str, Any]], Any] = AdminClient,
) -> list[str]:
    """As `admin` (settings; `login_password` instead of its file while rotating it): every
    user's SCRAM credential from `secrets_dir`/kafka-<user>, then every ACL. What was done."""
    if login_password is not None:
        settings = settings.model_copy(update={"kafka_password": SecretStr(login_password)})
    admin = admin_client(confluent_config(settings))
    upserts = [
        UserScramCredentialUpsertion(
            user,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
            _read(secrets_dir / f"kafka-{user}").encode(),
        )
        for user in credentials.USERS
    ]
    return [
        *_settle(admin.alter_user_scram_credentials(upserts), "set {}'s credential"),
        *_settle(admin.create_acls(credentials.bindings(settings)), "create the ACL {}"),
    ]


def _settle(futures: dict[Any, Any], action: str) -> list[str]:
    """Wait for each admin request; the first failure ends the run naming what it was for."""
    for subject, future in futures.items():
        try:
            future.result(timeout=30)
        except Exception as error:
            raise SystemExit(
                f"kafka-access: could not {action.format(subject)}: {_reason(error)}"
            ) from None
    return [action.format(subject) for subject in futures]


def _reason(error: Exception) -> str:
    """Some client errors print as nothing (a failed login): name them then."""
    return str(error) or repr(error)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m icecube_stream.tools.compose_secure",
        description="Secrets of compose.secure.yaml, and its Kafka users and ACLs.",
    )
    commands = top.add_subparsers(dest="command", required=True)
    make = commands.add_parser("generate", help="write the missing secret files (on the host)")
    make.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"where (default: {DEFAULT_DIR} of the checkout)",
    )
    make.add_argument(
        "--rotate",
        action="append",
        default=[],
        metavar="NAME",
        choices=rotatable_names(),
        help="make this one anew (repeatable): " + ", ".join(rotatable_names()),
    )
    access = commands.add_parser(
        "kafka-access", help="SCRAM users and ACLs, as admin (in the kafka-access container)"
    )
    access.add_argument("--secrets", type=Path, default=MOUNT, help="the password files")
    access.add_argument(
        "--login-password-stdin",
        action="store_true",
        help="log in with the admin password read from standard input (while rotating it)",
    )
    return top


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "generate":
        folder = args.dir or get_settings().deploy_dir / "compose" / "secrets"
        for path in generate(folder, args.rotate):
            print(path)
        return
    login = sys.stdin.read().rstrip("\r\n") if args.login_password_stdin else None
    for line in kafka_access(get_settings(), args.secrets, login):
        print(line)


if __name__ == "__main__":
    main()
