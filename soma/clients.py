"""Client factories: every Kafka, PostgreSQL, Redis and HTTP connection is built here from `Settings`.

Blocking clients (librdkafka, SQLAlchemy, redis) for the CLI, the outbox and the tools; asyncio
clients (aiokafka, redis.asyncio, httpx) for the stream processes, which run on Faust's event loop.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import redis
import redis.asyncio as aioredis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import InterfaceError, OperationalError

from soma.errors import InfrastructureUnavailable, first_line
from soma.settings import Settings, env_name
from soma.settings.kafka_security import uses_sasl, uses_tls

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer
    from sqlalchemy.ext.asyncio import AsyncEngine

# librdkafka's own log lines go through Python logging instead of raw stderr.
LIBRDKAFKA_LOGGER = logging.getLogger("soma.librdkafka")


def kafka_producer(settings: Settings, **overrides: Any) -> Producer:
    return Producer(settings.producer_config(logger=LIBRDKAFKA_LOGGER, **overrides))


def kafka_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    return Consumer(settings.consumer_config(group_id, logger=LIBRDKAFKA_LOGGER, **overrides))


def kafka_admin(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka_config() | {"logger": LIBRDKAFKA_LOGGER})


def database_engine(settings: Settings, **overrides: Any) -> Engine:
    return create_engine(settings.sqlalchemy_url(), **(settings.sqlalchemy_engine_options() | overrides))


def async_database_engine(settings: Settings, **overrides: Any) -> AsyncEngine:
    """The asyncio form of `database_engine` (psycopg 3's async driver, same URL and options)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(settings.sqlalchemy_url(), **(settings.sqlalchemy_engine_options() | overrides))


@contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """Turn "cannot connect" failures into one line naming the setting (other errors pass through)."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        url = settings.sqlalchemy_url()
        first = first_line(exc)
        raise InfrastructureUnavailable(
            f"postgresql: cannot connect to {url.host}:{url.port or 5432}/{url.database} "
            f"({env_name('database_url')}): {first}"
        ) from exc


def redis_client(settings: Settings) -> redis.Redis:
    timeout = settings.kafka.timeout_s
    return redis.Redis.from_url(
        settings.redis_url_value(), socket_timeout=timeout, socket_connect_timeout=timeout
    )


def async_redis_client(settings: Settings) -> aioredis.Redis:
    """The asyncio form of `redis_client` (same URL and timeouts)."""
    timeout = settings.kafka.timeout_s
    return aioredis.Redis.from_url(
        settings.redis_url_value(), socket_timeout=timeout, socket_connect_timeout=timeout
    )


def http_client() -> httpx.AsyncClient:
    """An asyncio HTTP client (e.g. to OPA); timeouts are given per request."""
    return httpx.AsyncClient()


def sasl_password(settings: Settings) -> str | None:
    secret = settings.kafka.sasl_password
    return secret.get_secret_value() if secret is not None else None


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the aiokafka clients (None without TLS): the CA, client certificate and key
    librdkafka gets as ssl.ca.location / ssl.certificate.location / ssl.key.location, and its hostname check."""
    kafka = settings.kafka
    if not uses_tls(kafka):
        return None
    from aiokafka.helpers import create_ssl_context  # imported here: only the stream processes need aiokafka

    password = kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password is not None else None
    context: ssl.SSLContext = create_ssl_context(
        cafile=kafka.ssl_ca_file, certfile=kafka.ssl_cert_file, keyfile=kafka.ssl_key_file, password=password,
    )
    context.check_hostname = kafka.ssl_check_hostname  # certificates are verified either way
    return context


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client (empty for PLAINTEXT): the same security protocol, TLS files
    and SASL credentials `Settings.kafka_config` gives librdkafka, so every client talks to the broker alike."""
    kafka = settings.kafka
    if kafka.security_protocol == "PLAINTEXT":
        return {}
    kwargs: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if uses_tls(kafka):
        kwargs["ssl_context"] = kafka_ssl_context(settings)
    if uses_sasl(kafka):
        # aiokafka takes the SCRAM credentials in its sasl_plain_* arguments too.
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism
        kwargs["sasl_plain_username"] = kafka.sasl_username
        kwargs["sasl_plain_password"] = sasl_password(settings)
    return kwargs


def aiokafka_reader(settings: Settings, client_id: str, **overrides: Any) -> AIOKafkaConsumer:
    """A group-less aiokafka consumer (no commits: the caller assigns and seeks), not started yet."""
    from aiokafka import AIOKafkaConsumer  # imported here: only the stream processes need aiokafka

    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap, group_id=None, enable_auto_commit=False,
        client_id=f"{settings.kafka.client_id}-{client_id}", **(aiokafka_security(settings) | overrides),
    )
