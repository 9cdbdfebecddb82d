"""How the platform authenticates to Kafka: the security settings checked, and as librdkafka configuration.

One set of ``SOMA_KAFKA_*`` settings drives every client: librdkafka's producers, consumers and
admin client (`librdkafka_security`, merged into `KafkaSettings.config`), and aiokafka / Faust in
the streams (`soma.clients.aiokafka_security`, `streams.runtime.auth.faust_credentials`, both
from the same fields). The files are PEM (what both librdkafka and Python's ``ssl`` read).

`check` runs when the settings load, so a process refuses to start with one line naming the
variable (a missing or unreadable file, a certificate without its key, a key that does not
match, SASL without its mechanism or credentials, TLS files under a protocol without TLS)
instead of failing later, differently, in each client.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soma.settings.values import env_name

if TYPE_CHECKING:
    from soma.settings.sections import KafkaSettings

TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_FILES = ("ssl_ca_file", "ssl_cert_file", "ssl_key_file")


def _var(field: str) -> str:
    return env_name(f"kafka_{field}")


def uses_tls(kafka: KafkaSettings) -> bool:
    return kafka.security_protocol in TLS_PROTOCOLS


def uses_sasl(kafka: KafkaSettings) -> bool:
    return kafka.security_protocol in SASL_PROTOCOLS


def _readable(field: str, path: Path) -> None:
    if not path.is_file():
        raise ValueError(f"{_var(field)}: no such file: {path}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ValueError(f"{_var(field)}: cannot read {path}: {exc.strerror or exc}") from None


def _ssl_reason(exc: ssl.SSLError | ValueError) -> str:
    reason = getattr(exc, "reason", None)
    if reason:  # OpenSSL's code, e.g. KEY_VALUES_MISMATCH
        return str(reason).replace("_", " ").lower()
    return re.sub(r"\s*\(_ssl\.c:\d+\)", "", str(exc)).strip() or type(exc).__name__


def _check_tls_files(kafka: KafkaSettings) -> None:
    """Every given file exists and parses: the CA as certificates, the certificate with its key."""
    for field in _FILES:
        path = getattr(kafka, field)
        if path is not None:
            _readable(field, path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if kafka.ssl_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(kafka.ssl_ca_file))
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(f"{_var('ssl_ca_file')}: not a PEM CA certificate ({_ssl_reason(exc)})") from None
    if kafka.ssl_cert_file is not None and kafka.ssl_key_file is not None:
        if kafka.ssl_key_password is None and b"ENCRYPTED" in kafka.ssl_key_file.read_bytes()[:4096]:
            raise ValueError(f"{_var('ssl_key_file')}: the key is encrypted, and {_var('ssl_key_password')} is not set")
        password = kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password is not None else ""
        try:
            # An empty password (rather than None) makes an encrypted key fail instead of prompting on a tty.
            context.load_cert_chain(str(kafka.ssl_cert_file), str(kafka.ssl_key_file), password=password)
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(
                f"{_var('ssl_cert_file')}/{_var('ssl_key_file')}: not a PEM certificate and its private key"
                f" (or {_var('ssl_key_password')} is wrong or missing): {_ssl_reason(exc)}"
            ) from None


def check(kafka: KafkaSettings) -> None:
    """Raise ValueError ``<VARIABLE>: <what is wrong>`` for the first inconsistent security setting."""
    protocol = kafka.security_protocol
    if uses_sasl(kafka):
        if kafka.sasl_mechanism is None:
            raise ValueError(f"{_var('sasl_mechanism')}: not set, {protocol} needs one of {', '.join(MECHANISMS)}")
        if not kafka.sasl_username:
            raise ValueError(f"{_var('sasl_username')}: not set, {protocol} needs a user name")
        if kafka.sasl_password is None or not kafka.sasl_password.get_secret_value():
            raise ValueError(f"{_var('sasl_password')}: not set, {protocol} needs a password")
    given = [field for field in (*_FILES, "ssl_key_password") if getattr(kafka, field) is not None]
    if given and not uses_tls(kafka):
        raise ValueError(
            f"{_var(given[0])}: set, but {_var('security_protocol')} is {protocol}, which has no TLS"
            " (use SSL or SASL_SSL)"
        )
    if kafka.ssl_cert_file is not None and kafka.ssl_key_file is None:
        raise ValueError(
            f"{_var('ssl_cert_file')}: set without {_var('ssl_key_file')} (a client certificate needs its key)"
        )
    if kafka.ssl_key_file is not None and kafka.ssl_cert_file is None:
        raise ValueError(f"{_var('ssl_key_file')}: set without {_var('ssl_cert_file')} (a key needs its certificate)")
    if kafka.ssl_key_password is not None and kafka.ssl_key_file is None:
        raise ValueError(f"{_var('ssl_key_password')}: set without {_var('ssl_key_file')}")
    if uses_tls(kafka):
        _check_tls_files(kafka)


def librdkafka_security(kafka: KafkaSettings) -> dict[str, Any]:
    """The security part of every librdkafka client's configuration (producer, consumer, admin)."""
    config: dict[str, Any] = {"security.protocol": kafka.security_protocol}
    if uses_sasl(kafka) and kafka.sasl_mechanism is not None and kafka.sasl_password is not None:
        config["sasl.mechanism"] = kafka.sasl_mechanism
        config["sasl.username"] = kafka.sasl_username or ""
        config["sasl.password"] = kafka.sasl_password.get_secret_value()
    if uses_tls(kafka):
        config["ssl.endpoint.identification.algorithm"] = "https" if kafka.ssl_check_hostname else "none"
        if kafka.ssl_ca_file is not None:
            config["ssl.ca.location"] = str(kafka.ssl_ca_file)
        if kafka.ssl_cert_file is not None and kafka.ssl_key_file is not None:
            config["ssl.certificate.location"] = str(kafka.ssl_cert_file)
            config["ssl.key.location"] = str(kafka.ssl_key_file)
            if kafka.ssl_key_password is not None:
                config["ssl.key.password"] = kafka.ssl_key_password.get_secret_value()
    return config
