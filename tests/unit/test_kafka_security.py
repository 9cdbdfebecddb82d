"""The Kafka security settings: one set of SOMA_KAFKA_* variables, checked at load in one line naming the
variable, and the same protocol, TLS files and SASL credentials in librdkafka's, aiokafka's and Faust's form."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import faust
import pytest

from soma.clients import aiokafka_security, kafka_ssl_context
from soma.errors import SettingsError
from soma.observability.logs import settings_secrets
from soma.settings import Settings, load_settings
from streams.runtime.auth import faust_credentials
from tests.support.procs import REPO
from tests.support.tls import KEY_PASSWORD, Pki, make_pki

SASL_PW = "sasl-pw-6626070"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def _no_security_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("SOMA_KAFKA_SSL_", "SOMA_KAFKA_SASL_", "SOMA_KAFKA_SECURITY_")):
            monkeypatch.delenv(name)
    return


def mtls(pki: Pki, **extra: Any) -> Settings:
    return load_settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=str(pki.ca),
                         kafka_ssl_cert_file=str(pki.client_cert), kafka_ssl_key_file=str(pki.client_key), **extra)


def _ca_subjects(context: ssl.SSLContext) -> list[str]:
    return [dict(part[0] for part in ca["subject"])["commonName"] for ca in context.get_ca_certs()]


def test_plaintext_sets_no_tls_or_sasl_anywhere() -> None:
    settings = load_settings()
    assert {k: v for k, v in settings.kafka_config().items() if k.startswith(("ssl.", "sasl.", "security."))} == {
        "security.protocol": "PLAINTEXT"}
    assert aiokafka_security(settings) == {}
    assert kafka_ssl_context(settings) is None
    assert faust_credentials(settings) is None


def test_mutual_tls_reaches_librdkafka_aiokafka_and_faust_alike(pki: Pki) -> None:
    settings = mtls(pki)
    config = settings.kafka_config()
    assert config["security.protocol"] == "SSL"
    assert config["ssl.ca.location"] == str(pki.ca)
    assert config["ssl.certificate.location"] == str(pki.client_cert)
    assert config["ssl.key.location"] == str(pki.client_key)
    assert config["ssl.endpoint.identification.algorithm"] == "https"
    assert "ssl.key.password" not in config
    assert "sasl.mechanism" not in config
    for built in (settings.producer_config(), settings.consumer_config("g")):  # and the admin client: kafka_config
        assert {k: built[k] for k in config} == config
    kwargs = aiokafka_security(settings)
    assert kwargs["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in kwargs
    context = kwargs["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert _ca_subjects(context) == ["soma-test-ca"]  # our CA, not the system's
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert _ca_subjects(credentials.context) == ["soma-test-ca"]


def test_sasl_ssl_with_scram_and_an_encrypted_client_key(pki: Pki) -> None:
    settings = load_settings(
        kafka_security_protocol="sasl_ssl", kafka_sasl_mechanism="scram-sha-256", kafka_sasl_username="svc",
        kafka_sasl_password=SASL_PW, kafka_ssl_ca_file=str(pki.ca), kafka_ssl_cert_file=str(pki.client_cert),
        kafka_ssl_key_file=str(pki.client_key_encrypted), kafka_ssl_key_password=KEY_PASSWORD,
    )
    config = settings.kafka_config()
    assert (config["security.protocol"], config["sasl.mechanism"]) == ("SASL_SSL", "SCRAM-SHA-256")
    assert (config["sasl.username"], config["sasl.password"]) == ("svc", SASL_PW)
    assert config["ssl.key.password"] == KEY_PASSWORD
    kwargs = aiokafka_security(settings)
    assert (kwargs["security_protocol"], kwargs["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-256")
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("svc", SASL_PW)
    assert _ca_subjects(kwargs["ssl_context"]) == ["soma-test-ca"]
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    shown = repr(settings) + str(settings.safe_view())
    assert SASL_PW not in shown
    assert KEY_PASSWORD not in shown
    assert settings.safe_view()["SOMA_KAFKA_SSL_KEY_PASSWORD"] == "***"
    assert {SASL_PW, KEY_PASSWORD} <= set(settings_secrets(settings))  # what the log redactor replaces


def test_hostname_check_can_be_turned_off_but_certificates_are_still_verified(pki: Pki) -> None:
    settings = mtls(pki, kafka_ssl_check_hostname=False)
    assert settings.kafka_config()["ssl.endpoint.identification.algorithm"] == "none"
    context = kafka_ssl_context(settings)
    assert context is not None
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_tls_without_a_ca_file_uses_the_system_cas() -> None:
    settings = load_settings(kafka_security_protocol="SSL")
    assert "ssl.ca.location" not in settings.kafka_config()
    context = kafka_ssl_context(settings)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_paths_are_absolute_and_an_empty_variable_is_unset(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(pki.folder)
    settings = load_settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=pki.ca.name)
    assert settings.kafka.ssl_ca_file == pki.ca  # a child process in another folder still finds it
    monkeypatch.setenv("SOMA_KAFKA_SSL_CA_FILE", "")
    monkeypatch.setenv("SOMA_KAFKA_SASL_MECHANISM", " ")
    unset = load_settings(kafka_security_protocol="SSL")
    assert unset.kafka.ssl_ca_file is None
    assert unset.kafka.sasl_mechanism is None


def _error(**fields: Any) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(**fields)
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.__cause__ is None
    return message


def test_unknown_protocol_and_mechanism_name_their_variable() -> None:
    assert _error(kafka_security_protocol="TLS").startswith("invalid setting SOMA_KAFKA_SECURITY_PROTOCOL: ")
    assert _error(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="GSSAPI", kafka_sasl_username="u",
                  kafka_sasl_password="p").startswith("invalid setting SOMA_KAFKA_SASL_MECHANISM: ")


@pytest.mark.parametrize(("fields", "variable", "words"), [
    ({"kafka_security_protocol": "SASL_SSL"}, "SOMA_KAFKA_SASL_MECHANISM", "SASL_SSL needs one of PLAIN"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN", "kafka_sasl_password": SASL_PW},
     "SOMA_KAFKA_SASL_USERNAME", "needs a user name"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "u"},
     "SOMA_KAFKA_SASL_PASSWORD", "needs a password"),
])
def test_sasl_without_its_mechanism_or_credentials(fields: dict[str, Any], variable: str, words: str) -> None:
    message = _error(**fields)
    assert message.startswith(f"invalid setting {variable}: ")
    assert words in message
    assert SASL_PW not in message


def test_tls_file_problems_name_the_variable(pki: Pki, tmp_path: Path) -> None:
    ca, cert, key = str(pki.ca), str(pki.client_cert), str(pki.client_key)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"\xff\xfenot a certificate\n")
    unreadable = tmp_path / "folder.pem"
    unreadable.mkdir()
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"kafka_ssl_ca_file": str(tmp_path / "missing.pem")}, "SOMA_KAFKA_SSL_CA_FILE", "no such file"),
        ({"kafka_ssl_ca_file": str(unreadable)}, "SOMA_KAFKA_SSL_CA_FILE", "no such file"),
        ({"kafka_ssl_ca_file": str(garbage)}, "SOMA_KAFKA_SSL_CA_FILE", "not a PEM CA certificate"),
        ({"kafka_ssl_ca_file": ca, "kafka_ssl_cert_file": cert}, "SOMA_KAFKA_SSL_CERT_FILE",
         "without SOMA_KAFKA_SSL_KEY_FILE"),
        ({"kafka_ssl_key_file": key}, "SOMA_KAFKA_SSL_KEY_FILE", "without SOMA_KAFKA_SSL_CERT_FILE"),
        ({"kafka_ssl_key_password": KEY_PASSWORD}, "SOMA_KAFKA_SSL_KEY_PASSWORD", "without SOMA_KAFKA_SSL_KEY_FILE"),
        ({"kafka_ssl_cert_file": str(tmp_path / "nope.pem"), "kafka_ssl_key_file": key}, "SOMA_KAFKA_SSL_CERT_FILE",
         "no such file"),
        ({"kafka_ssl_cert_file": cert, "kafka_ssl_key_file": str(pki.server_key)}, "SOMA_KAFKA_SSL_CERT_FILE",
         "not a PEM certificate and its private key"),  # a key that is not the certificate's
        ({"kafka_ssl_cert_file": cert, "kafka_ssl_key_file": str(pki.client_key_encrypted)},
         "SOMA_KAFKA_SSL_KEY_FILE", "the key is encrypted, and SOMA_KAFKA_SSL_KEY_PASSWORD is not set"),
        ({"kafka_ssl_cert_file": cert, "kafka_ssl_key_file": str(pki.client_key_encrypted),
          "kafka_ssl_key_password": "not-the-password"}, "SOMA_KAFKA_SSL_CERT_FILE", "is wrong or missing"),
    ]
    for fields, variable, words in cases:
        message = _error(kafka_security_protocol="SSL", **fields)
        assert message.startswith(f"invalid setting {variable}"), (fields, message)
        assert words in message, (fields, message)
        assert KEY_PASSWORD not in message


def test_tls_files_under_a_protocol_without_tls_are_refused(pki: Pki) -> None:
    # Silently ignoring them would send in clear text what the operator believes is encrypted.
    for protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        message = _error(kafka_security_protocol=protocol, kafka_ssl_ca_file=str(pki.ca), kafka_sasl_mechanism="PLAIN",
                         kafka_sasl_username="u", kafka_sasl_password="p")
        assert message.startswith("invalid setting SOMA_KAFKA_SSL_CA_FILE: set, but SOMA_KAFKA_SECURITY_PROTOCOL is ")
        assert "use SSL or SASL_SSL" in message


def test_soma_settings_masks_the_kafka_secrets(pki: Pki) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOMA_")} | {
        "SOMA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "SOMA_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "SOMA_KAFKA_SASL_USERNAME": "svc", "SOMA_KAFKA_SASL_PASSWORD": SASL_PW,
        "SOMA_KAFKA_SSL_CA_FILE": str(pki.ca), "SOMA_KAFKA_SSL_CERT_FILE": str(pki.client_cert),
        "SOMA_KAFKA_SSL_KEY_FILE": str(pki.client_key_encrypted), "SOMA_KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
        "COLUMNS": "300",
    }
    shown = subprocess.run([sys.executable, "-m", "soma", "settings"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=120, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "SOMA_KAFKA_SSL_KEY_PASSWORD" in shown.stdout
    assert str(pki.client_cert) in shown.stdout
    assert SASL_PW not in shown.stdout + shown.stderr
    assert KEY_PASSWORD not in shown.stdout + shown.stderr
    env["SOMA_KAFKA_SSL_KEY_PASSWORD"] = "wrong-" + KEY_PASSWORD
    refused = subprocess.run([sys.executable, "-m", "soma", "settings"], env=env, cwd=REPO, capture_output=True,
                             text=True, timeout=120, check=False)
    assert refused.returncode != 0
    assert "SOMA_KAFKA_SSL_KEY_PASSWORD is wrong or missing" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr
    assert KEY_PASSWORD not in refused.stderr + refused.stdout
