"""Every client's connection options come from one place; a setting nobody passes on would
leave that client in plaintext, so each protocol is checked for every client library."""

import re
import ssl
import subprocess
from pathlib import Path

import pytest

from icecube_stream.config import Settings
from icecube_stream.connections import (
    aiokafka_options,
    confluent_config,
    faust_credentials,
    kafka_ssl_context,
    mongo_options,
)

pytestmark = pytest.mark.unit


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a client certificate it signed, as PEM files (openssl, EC keys: fast)."""
    root = tmp_path_factory.mktemp("pki")
    files = {"ca": root / "ca.pem", "cert": root / "cert.pem", "key": root / "key.pem"}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", str(root / "ca.key"), "-out", str(files["ca"]),
            "-days", "1", "-subj", "/CN=test-ca")  # fmt: skip
    openssl("req", *ec, "-keyout", str(files["key"]), "-out", str(root / "cert.csr"),
            "-subj", "/CN=worker")  # fmt: skip
    openssl("x509", "-req", "-in", str(root / "cert.csr"), "-CA", str(files["ca"]),
            "-CAkey", str(root / "ca.key"), "-CAcreateserial", "-days", "1",
            "-out", str(files["cert"]))  # fmt: skip
    return files


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    settings = Settings()
    assert confluent_config(settings) == {"bootstrap.servers": "127.0.0.1:9092"}
    assert aiokafka_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert kafka_ssl_context(settings) is None
    assert faust_credentials(settings) is None
    assert mongo_options(settings) == {}


def test_sasl_ssl_reaches_every_kafka_client(pki: dict[str, Path]) -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_username="worker",
                        kafka_password="pw", kafka_ca_file=pki["ca"])  # fmt: skip
    assert confluent_config(settings) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "sasl_ssl",
        "ssl.ca.location": str(pki["ca"]),
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "worker",
        "sasl.password": "pw",
    }
    options = aiokafka_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == (
        "SCRAM-SHA-512",
        "worker",
    )
    assert options["sasl_plain_password"] == "pw"
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    credentials = faust_credentials(settings)
    assert (credentials.username, credentials.password) == ("worker", "pw")
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.ssl_context is not None


def test_ssl_with_a_client_certificate(pki: dict[str, Path]) -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ca_file=pki["ca"],
                        kafka_cert_file=pki["cert"], kafka_key_file=pki["key"])  # fmt: skip
    config = confluent_config(settings)
    assert config["security.protocol"] == "ssl"
    assert (config["ssl.certificate.location"], config["ssl.key.location"]) == (
        str(pki["cert"]), str(pki["key"])
    )  # fmt: skip
    assert "sasl.username" not in config
    assert "sasl_mechanism" not in aiokafka_options(settings)
    assert type(faust_credentials(settings)).__name__ == "SSLCredentials"


def test_mongo_credentials_never_enter_the_url(pki: dict[str, Path]) -> None:
    settings = Settings(mongo_username="worker", mongo_password="pw", mongo_tls=True,
                        mongo_ca_file=pki["ca"])  # fmt: skip
    assert settings.mongo_url == "mongodb://127.0.0.1:27017/"
    assert mongo_options(settings) == {
        "username": "worker", "password": "pw", "tls": True, "tlsCAFile": str(pki["ca"])
    }  # fmt: skip


def test_a_secret_comes_from_a_file_and_a_missing_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "password").write_text("from-a-file\n")
    monkeypatch.setenv("ICECUBE_KAFKA_PASSWORD_FILE", str(tmp_path / "password"))
    settings = Settings()
    assert settings.kafka_password is not None
    assert settings.kafka_password.get_secret_value() == "from-a-file"
    assert "from-a-file" not in repr(settings)
    monkeypatch.setenv("ICECUBE_MONGO_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="ICECUBE_MONGO_PASSWORD_FILE: cannot read"):
        Settings()


PACKAGE = Path(__file__).resolve().parents[2] / "src" / "icecube_stream"


def test_no_client_is_built_beside_the_connection_options() -> None:
    """A client made with its own bootstrap list or bare URL would ignore the security
    settings: every one goes through connections.py."""
    stray = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if path.name != "connections.py" and '"bootstrap.servers": settings' in text:
            stray.append(f"{path.name}: bootstrap.servers")
        for client, options in (("AIOKafkaProducer(", "aiokafka_options"),
                                ("MongoClient(", "mongo_options"),
                                ("AdminClient(", "confluent_config"),
                                ("Consumer(", "confluent_config"),
                                ("Producer(", "confluent_config")):  # fmt: skip
            if re.search(rf"(?<!\w){re.escape(client)}", text) and options not in text:
                stray.append(f"{path.relative_to(PACKAGE)}: {client} without {options}")
    assert stray == []
