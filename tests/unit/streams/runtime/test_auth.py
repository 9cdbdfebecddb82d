"""The streams talk to the broker with the same security settings as librdkafka clients."""

from __future__ import annotations

import faust

from soma.clients import aiokafka_security
from soma.settings import load_settings
from streams.runtime.auth import faust_credentials


def test_plaintext_needs_no_credentials() -> None:
    settings = load_settings()
    assert faust_credentials(settings) is None
    assert aiokafka_security(settings) == {}


def test_sasl_ssl_carries_mechanism_user_password_and_tls() -> None:
    settings = load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                             kafka_sasl_username="svc", kafka_sasl_password="s3cret")
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("svc", "s3cret")
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_SSL"  # TLS because a context is given
    kwargs = aiokafka_security(settings)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("svc", "s3cret")
    assert kwargs["ssl_context"] is not None


def test_sasl_plaintext_has_no_tls_and_ssl_has_no_sasl() -> None:
    sasl = load_settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                         kafka_sasl_username="u", kafka_sasl_password="p")
    credentials = faust_credentials(sasl)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert "ssl_context" not in aiokafka_security(sasl)
    tls = load_settings(kafka_security_protocol="SSL")
    assert isinstance(faust_credentials(tls), faust.SSLCredentials)
    assert "sasl_mechanism" not in aiokafka_security(tls)
