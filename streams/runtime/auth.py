"""Broker security for the Faust app: the settings' security protocol and SASL credentials as Faust's
`broker_credentials` (the aiokafka form is `soma.clients.aiokafka_security`, librdkafka's
`Settings.kafka_config`), so every client of one process talks to the broker the same way.
"""

from __future__ import annotations

import ssl

import faust

from soma.clients import sasl_password
from soma.settings import Settings


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """`broker_credentials` for the Faust app, or None for PLAINTEXT."""
    protocol = settings.kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl.create_default_context())
    return faust.SASLCredentials(
        username=settings.kafka.sasl_username,
        password=sasl_password(settings),
        mechanism=settings.kafka.sasl_mechanism or "PLAIN",
        ssl_context=ssl.create_default_context() if protocol == "SASL_SSL" else None,
    )
