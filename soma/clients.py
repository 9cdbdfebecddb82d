"""Client factories: every Kafka, PostgreSQL and Redis connection is built here from `Settings`."""

from __future__ import annotations

import logging
from typing import Any

import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, create_engine

from soma.settings import Settings

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


def redis_client(settings: Settings) -> redis.Redis:
    timeout = settings.kafka_timeout_s
    return redis.Redis.from_url(
        settings.redis_url_value(), socket_timeout=timeout, socket_connect_timeout=timeout
    )
