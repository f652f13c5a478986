"""The secured stack's pure parts: broker properties, grants, a child's environment, the CA."""

from pathlib import Path

import pytest
from cryptography import x509

from icecube_stream.config import Settings
from icecube_stream.stack import credentials
from icecube_stream.stack.kafka import BrokerTls, server_properties
from icecube_stream.stack.pki import Authority

pytestmark = pytest.mark.unit


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_a_secured_broker_has_no_plaintext_listener_and_checks_acls(tmp_path: Path) -> None:
    tls = BrokerTls(tmp_path / "k.pem", tmp_path / "ca.pem", "pw")
    secured = properties(server_properties(Settings(), 1, tmp_path, tls))
    assert secured["listeners"] == "SASL_SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert "PLAINTEXT" not in secured["listener.security.protocol.map"]
    assert secured["listener.name.controller.ssl.client.auth"] == "required"
    assert secured["allow.everyone.if.no.acl.found"] == "false"
    assert secured["super.users"] == "User:admin;User:CN=kafka-broker"
    assert (
        'username="admin" password="pw"'
        in secured["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    )
    plain = properties(server_properties(Settings(), 1, tmp_path))
    assert plain["listeners"].startswith("PLAINTEXT://") and "authorizer.class.name" not in plain


def test_grants_give_each_user_only_its_work() -> None:
    settings = Settings(topic_prefix="t.")
    granted = {(g.user, g.name) for g in credentials.grants(settings)}
    assert ("emitter", "t.icecube.pulses") in granted
    assert {name for user, name in granted if user == "emitter"} == {"t.icecube.pulses"}
    assert {"t.icecube.predictions", "t.icecube.pulses.dlq"} <= {
        name for user, name in granted if user == "worker"
    }
    assert not any(user == credentials.ADMIN for user, _ in granted)  # a super user needs none


def test_a_child_gets_its_secrets_as_file_names(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    env = credentials.user_env(settings, "worker")
    secrets = {path.read_text() for path in credentials.secrets_dir(settings).iterdir()}
    assert env["ICECUBE_KAFKA_USERNAME"] == "worker"
    assert Path(env["ICECUBE_KAFKA_PASSWORD_FILE"]).stat().st_mode & 0o077 == 0
    assert not secrets & set(env.values())
    in_process = credentials.as_user(settings, "worker")
    assert in_process.kafka_password is not None
    assert in_process.kafka_password.get_secret_value() in secrets


def test_the_ca_issues_a_certificate_for_the_listen_addresses_and_reuses_it(
    tmp_path: Path,
) -> None:
    ca = Authority(tmp_path / "pki")
    issued = ca.issue("kafka-broker", ["127.0.0.1", "localhost"])
    cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(str(n.value) for n in names) == ["127.0.0.1", "localhost"]
    cert.verify_directly_issued_by(ca.cert)  # raises unless the CA signed it
    assert issued.key.stat().st_mode & 0o077 == 0
    again = Authority(tmp_path / "pki").issue("kafka-broker", ["localhost", "127.0.0.1"])
    assert again.cert.read_bytes() == issued.cert.read_bytes()


def test_secured_ferretdb_listens_on_tls_only_and_never_has_a_password_in_argv(
    tmp_path: Path,
) -> None:
    from icecube_stream.stack.mongo import Mongo

    settings = Settings(state_dir=tmp_path, stack_secure=True, mongo_port=27018)
    mongo = Mongo(settings)
    argv = mongo.argv()
    assert "--listen-addr=" in argv and "--listen-tls=127.0.0.1:27018" in argv
    assert "--test-enable-new-auth" in argv
    password = credentials.secret(settings, "mongo-admin")
    assert password not in " ".join(argv)
    assert mongo.env()["FERRETDB_SETUP_PASSWORD"] == password
    plain = Mongo(Settings(state_dir=tmp_path, mongo_port=27018)).argv()
    assert (
        "--listen-addr=127.0.0.1:27018" in plain
        and "FERRETDB_SETUP_PASSWORD" not in Mongo(Settings(state_dir=tmp_path)).env()
    )
