"""Client factories: every Kafka, PostgreSQL and Redis connection is built here from `Settings`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import InterfaceError, OperationalError

from soma.errors import InfrastructureUnavailable
from soma.settings import Settings, env_name

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


@contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """Turn "cannot connect" failures into one line naming the setting (other errors pass through)."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        url = settings.sqlalchemy_url()
        original = getattr(exc, "orig", None) or exc
        first = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
        raise InfrastructureUnavailable(
            f"postgresql: cannot connect to {url.host}:{url.port or 5432}/{url.database} "
            f"({env_name('database_url')}): {first}"
        ) from exc


def redis_client(settings: Settings) -> redis.Redis:
    timeout = settings.kafka_timeout_s
    return redis.Redis.from_url(
        settings.redis_url_value(), socket_timeout=timeout, socket_connect_timeout=timeout
    )
