"""Broker security for the Faust app: the settings' security protocol, TLS context and SASL credentials
as Faust's `broker_credentials` (the aiokafka form is `soma.clients.aiokafka_security`, librdkafka's
`Settings.kafka_config`), so every client of one process talks to the broker the same way.
"""

from __future__ import annotations

import faust

from soma.clients import kafka_ssl_context, sasl_password
from soma.settings import Settings


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """`broker_credentials` for the Faust app (its consumers, producer and topic creation), None for PLAINTEXT."""
    protocol = settings.kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = kafka_ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.kafka.sasl_username,
        password=sasl_password(settings),
        mechanism=settings.kafka.sasl_mechanism,
        ssl_context=context,  # None for SASL_PLAINTEXT: Faust then says SASL_PLAINTEXT
    )
