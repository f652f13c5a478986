"""Connection options of every client, from the one Settings: Kafka for confluent-kafka
(librdkafka) and for aiokafka (the Faust worker and its sinks), and MongoDB. Security is decided
here once, so no client can connect in plaintext by forgetting an option.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from icecube_stream.config import Settings


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of aiokafka clients: the configured CA, and a client certificate when
    one is set; None for PLAINTEXT."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    cafile = str(settings.kafka_ca_file) if settings.kafka_ca_file else None
    context = ssl.create_default_context(cafile=cafile)
    if settings.kafka_cert_file:
        context.load_cert_chain(settings.kafka_cert_file, settings.kafka_key_file)
    return context


def confluent_config(settings: Settings) -> dict[str, Any]:
    """librdkafka properties: bootstrap servers and security; a client adds its own with `|`."""
    config: dict[str, Any] = {"bootstrap.servers": settings.kafka_bootstrap}
    protocol = settings.kafka_security_protocol
    if protocol != "PLAINTEXT":
        config["security.protocol"] = protocol.lower()
        if settings.kafka_ca_file:
            config["ssl.ca.location"] = str(settings.kafka_ca_file)
        if settings.kafka_cert_file:
            config["ssl.certificate.location"] = str(settings.kafka_cert_file)
        if settings.kafka_key_file:
            config["ssl.key.location"] = str(settings.kafka_key_file)
    if protocol == "SASL_SSL":
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_username or ""
        config["sasl.password"] = (
            settings.kafka_password.get_secret_value() if settings.kafka_password else ""
        )
    return config


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of AIOKafkaProducer/Consumer for the configured security."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol != "PLAINTEXT":
        options["ssl_context"] = kafka_ssl_context(settings)
    if protocol == "SASL_SSL":
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_username
        options["sasl_plain_password"] = (
            settings.kafka_password.get_secret_value() if settings.kafka_password else None
        )
    return options


def mongo_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of MongoClient/AsyncMongoClient beside `settings.mongo_url`, which
    never carries a credential (it appears in messages)."""
    options: dict[str, Any] = {}
    if settings.mongo_username:
        options["username"] = settings.mongo_username
        options["password"] = (
            settings.mongo_password.get_secret_value() if settings.mongo_password else None
        )
    if settings.mongo_tls:
        options["tls"] = True
        if settings.mongo_ca_file:
            options["tlsCAFile"] = str(settings.mongo_ca_file)
    return options


def faust_credentials(settings: Settings) -> Any:
    """The Faust worker's broker credentials for the configured security; None for PLAINTEXT.
    faust loads only here, so the CLI's other commands stay light."""
    import faust

    context = kafka_ssl_context(settings)
    if settings.kafka_security_protocol == "SASL_SSL":
        password = settings.kafka_password.get_secret_value() if settings.kafka_password else ""
        return faust.SASLCredentials(
            username=settings.kafka_username or "",
            password=password,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    return faust.SSLCredentials(context) if context is not None else None


def mlflow_tracking_uri(settings: Settings) -> str:
    """The tracking URI, with the basic-auth user exported where MLflow's client reads it
    (MLFLOW_TRACKING_USERNAME/PASSWORD: it has no other way to take them)."""
    if settings.mlflow_username:
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_username
        if settings.mlflow_password:
            os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.mlflow_password.get_secret_value()
    return settings.mlflow_tracking_uri


def model_server_headers(settings: Settings) -> dict[str, str]:
    """What every request to the model server carries: its token, when one is set."""
    token = settings.model_server_token
    return {"authorization": f"Bearer {token.get_secret_value()}"} if token else {}
