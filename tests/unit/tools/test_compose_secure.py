"""The secured compose deployment's secret files and its Kafka one-shot, without Docker."""

from __future__ import annotations

import configparser
import shlex
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from icecube_stream.config import Settings
from icecube_stream.stack import credentials
from icecube_stream.tools import compose_secure

pytestmark = pytest.mark.unit


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_generate_writes_every_mounted_file_readable_by_any_container_user(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "secrets"
    written = compose_secure.generate(folder)
    assert [path.name for path in written] == compose_secure.mounted_names()
    assert mode(folder) == 0o700  # the host's other users stay out
    for path in written:
        assert mode(path) == 0o644, path.name  # Kafka 1000, MongoDB 999, ours 10001 read it
    assert mode(folder / compose_secure.CA_KEY) == 0o600  # never mounted
    assert compose_secure.CA_KEY not in compose_secure.mounted_names()
    passwords = {name: (folder / name).read_text() for name in compose_secure.PASSWORDS}
    assert all(len(value) >= 32 and "\n" not in value for value in passwords.values())
    assert len(set(passwords.values())) == len(passwords)
    assert {f"kafka-{user}" for user in credentials.USERS} <= set(passwords)


def test_generate_again_changes_nothing(tmp_path: Path) -> None:
    compose_secure.generate(tmp_path)
    before = contents(tmp_path)
    compose_secure.generate(tmp_path)
    assert contents(tmp_path) == before


def test_certificates_name_the_service_and_the_host_and_chain_to_the_ca(tmp_path: Path) -> None:
    compose_secure.generate(tmp_path)
    ca = x509.load_pem_x509_certificate((tmp_path / compose_secure.CA).read_bytes())
    for common_name, addresses in compose_secure.CERTIFICATES.items():
        text = (tmp_path / compose_secure.bundle(common_name)).read_text()
        assert "PRIVATE KEY-----" in text and "BEGIN CERTIFICATE" in text  # key and certificate
        cert = x509.load_pem_x509_certificate(text[text.index("-----BEGIN CERTIFICATE") :].encode())
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(str(n.value) for n in names) == sorted(addresses)
        common = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        assert common[0].value == common_name
    assert compose_secure.CERTIFICATES[credentials.BROKER_CERT][0] == "kafka"


def test_files_built_from_passwords_carry_the_current_ones(tmp_path: Path) -> None:
    compose_secure.generate(tmp_path)
    admin = (tmp_path / "kafka-admin").read_text()
    jaas = (tmp_path / compose_secure.KAFKA_JAAS).read_text()
    assert jaas.startswith("KafkaServer {") and f'password="{admin}";' in jaas
    client = (tmp_path / compose_secure.KAFKA_ADMIN_PROPERTIES).read_text()
    assert "security.protocol=SASL_SSL" in client and f'password="{admin}";' in client
    assert f"ssl.truststore.location={compose_secure.MOUNT / compose_secure.CA}" in client
    auth = configparser.ConfigParser()
    auth.read(tmp_path / compose_secure.MLFLOW_AUTH)
    assert auth["mlflow"]["admin_username"] == credentials.ADMIN
    assert auth["mlflow"]["admin_password"] == (tmp_path / "mlflow-admin").read_text()
    assert auth["mlflow"]["database_uri"] == f"sqlite:///{compose_secure.MLFLOW_AUTH_DB}"


def test_rotating_a_password_keeps_the_old_one_apart_and_rewrites_what_carries_it(
    tmp_path: Path,
) -> None:
    compose_secure.generate(tmp_path)
    before = contents(tmp_path)
    inode = (tmp_path / "kafka-admin").stat().st_ino
    compose_secure.generate(tmp_path, rotate=["kafka-admin"])
    after = contents(tmp_path)
    assert after["kafka-admin"] != before["kafka-admin"]
    assert after["kafka-admin.previous"] == before["kafka-admin"]
    assert mode(tmp_path / "kafka-admin.previous") == 0o600
    assert (tmp_path / "kafka-admin").stat().st_ino == inode  # a running bind mount sees it
    assert after["kafka-admin"] in after[compose_secure.KAFKA_JAAS]
    assert after["kafka-admin"] in after[compose_secure.KAFKA_ADMIN_PROPERTIES]
    unchanged = set(compose_secure.PASSWORDS) - {"kafka-admin"} | {compose_secure.CA}
    assert all(after[name] == before[name] for name in unchanged)


def test_rotating_the_ca_reissues_every_certificate(tmp_path: Path) -> None:
    compose_secure.generate(tmp_path)
    before = contents(tmp_path)
    compose_secure.generate(tmp_path, rotate=["ca"])
    after = contents(tmp_path)
    ca = x509.load_pem_x509_certificate(after[compose_secure.CA])
    assert after[compose_secure.CA] != before[compose_secure.CA]
    for common_name in compose_secure.CERTIFICATES:
        cert = x509.load_pem_x509_certificate(after[f"{common_name}.pem"])
        cert.verify_directly_issued_by(ca)
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert mode(tmp_path / compose_secure.bundle(common_name)) == 0o644
    assert all(after[name] == before[name] for name in compose_secure.PASSWORDS)
    compose_secure.generate(tmp_path, rotate=["mongo"])
    assert contents(tmp_path)["mongo.pem"] != after["mongo.pem"]
    assert contents(tmp_path)["kafka-broker.pem"] == after["kafka-broker.pem"]


def test_an_unknown_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot rotate 'ca\.key'"):
        compose_secure.generate(tmp_path, rotate=["ca.key"])
    with pytest.raises(SystemExit):
        compose_secure.parser().parse_args(["generate", "--rotate", "nope"])


def test_the_host_env_names_settings_and_files_only(tmp_path: Path) -> None:
    compose_secure.generate(tmp_path)
    lines = [
        line
        for line in (tmp_path / compose_secure.HOST_ENV).read_text().splitlines()
        if line and not line.startswith("#")
    ]
    variables = dict(line.split("=", 1) for line in lines)
    fields = {f"ICECUBE_{name.upper()}" for name in Settings.model_fields}
    for name, value in variables.items():
        assert name in fields or name.removesuffix("_FILE") in fields, name
        if name.endswith("_FILE"):
            assert Path(shlex.split(value)[0]).is_file(), name
    secrets = {(tmp_path / name).read_text() for name in compose_secure.PASSWORDS}
    assert not any(secret in (tmp_path / compose_secure.HOST_ENV).read_text() for secret in secrets)
    assert variables["ICECUBE_KAFKA_USERNAME"] == "operator"


class FakeAdmin:
    """The AdminClient calls kafka_access makes, recorded; `fail` names a user to refuse."""

    def __init__(self, config: dict[str, Any], fail: str | None = None) -> None:
        self.config = config
        self.fail = fail
        self.upserts: list[Any] = []
        self.bindings: list[Any] = []

    @staticmethod
    def _done(error: Exception | None = None) -> Future[None]:
        future: Future[None] = Future()
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
        return future

    def alter_user_scram_credentials(self, upserts: list[Any]) -> dict[str, Future[None]]:
        self.upserts = upserts
        return {
            u.user: self._done(RuntimeError("refused") if u.user == self.fail else None)
            for u in upserts
        }

    def create_acls(self, bindings: list[Any]) -> dict[Any, Future[None]]:
        self.bindings = bindings
        return {binding: self._done() for binding in bindings}


def test_kafka_access_sets_every_users_credential_then_every_acl(tmp_path: Path) -> None:
    compose_secure.generate(tmp_path)
    admin_env = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_username": credentials.ADMIN,
        "kafka_host": "kafka",
        "kafka_port": 19092,
    }
    settings = Settings(**admin_env, kafka_password=(tmp_path / "kafka-admin").read_text())
    made: list[FakeAdmin] = []

    def client(config: dict[str, Any]) -> FakeAdmin:
        made.append(FakeAdmin(config))
        return made[-1]

    done = compose_secure.kafka_access(settings, tmp_path, admin_client=client)
    (admin,) = made
    assert admin.config["bootstrap.servers"] == "kafka:19092"
    assert admin.config["security.protocol"] == "sasl_ssl"
    assert admin.config["sasl.username"] == credentials.ADMIN
    assert admin.config["sasl.password"] == (tmp_path / "kafka-admin").read_text()
    assert [u.user for u in admin.upserts] == list(credentials.USERS)
    for upsert in admin.upserts:
        assert upsert.password == (tmp_path / f"kafka-{upsert.user}").read_bytes()
        assert upsert.scram_credential_info.iterations >= 4096  # Kafka's minimum
    expected = [b for grant in credentials.grants(settings) for b in grant.bindings()]
    assert admin.bindings == expected
    assert len(done) == len(credentials.USERS) + len(expected)
    assert not any((tmp_path / "kafka-worker").read_text() in line for line in done)


def test_kafka_access_logs_in_with_the_old_admin_password_while_rotating_it(
    tmp_path: Path,
) -> None:
    compose_secure.generate(tmp_path)
    configs: list[dict[str, Any]] = []

    def client(config: dict[str, Any]) -> FakeAdmin:
        configs.append(config)
        return FakeAdmin(config)

    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_username=credentials.ADMIN)
    compose_secure.kafka_access(settings, tmp_path, login_password="old", admin_client=client)
    assert configs[0]["sasl.password"] == "old"


def test_kafka_access_fails_loudly(tmp_path: Path) -> None:
    compose_secure.generate(tmp_path)
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_username=credentials.ADMIN)
    with pytest.raises(SystemExit, match="could not set worker's credential"):
        compose_secure.kafka_access(
            settings, tmp_path, admin_client=lambda config: FakeAdmin(config, fail="worker")
        )


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    compose_secure.main(["generate", "--dir", str(tmp_path / "s")])
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "s" / name) for name in compose_secure.mounted_names()]
    secrets = {(tmp_path / "s" / name).read_text() for name in compose_secure.PASSWORDS}
    assert not any(secret in " ".join(printed) for secret in secrets)
    args = compose_secure.parser().parse_args(["kafka-access", "--login-password-stdin"])
    assert args.login_password_stdin and args.secrets == Path("/run/secrets")
