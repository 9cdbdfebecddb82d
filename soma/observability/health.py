"""Real health checks of the infrastructure: a Kafka produce/consume round trip, `SELECT 1`, `PING`.

Each check either returns a `Health` or raises `InfrastructureUnavailable` whose one-line
message names the setting that points at the unreachable service.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]
from sqlalchemy import text

from soma.clients import database_engine, database_errors, kafka_admin, kafka_consumer, kafka_producer, redis_client
from soma.errors import InfrastructureUnavailable, first_line
from soma.settings import Settings, env_name, mask_url

HEALTH_TOPIC = "__soma_health"


@dataclass(frozen=True)
class Health:
    service: str
    address: str
    detail: str


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and hasattr(exc.args[0], "str"):
        return str(exc.args[0].str())  # KafkaError's own message, without the code wrapper
    return first_line(exc)


def kafka_round_trip(settings: Settings) -> Health:
    """Create the health topic if needed, produce one record, read that record back."""
    timeout = settings.kafka.timeout_s
    where = f"{settings.kafka.bootstrap} ({env_name('kafka_bootstrap')})"
    topic = settings.topic_name(HEALTH_TOPIC)
    admin = kafka_admin(settings)
    try:
        metadata = admin.list_topics(timeout=timeout)
        if topic not in metadata.topics:
            # On a cluster, replicated: one broker down must not make the whole of Kafka look down.
            replicas = max(1, min(3, len(metadata.brokers)))
            futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=replicas)])
            try:
                futures[topic].result(timeout=timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
        probe = uuid.uuid4().hex.encode()
        producer = kafka_producer(settings, **{"linger.ms": 0})
        delivered: list[TopicPartition] = []
        errors: list[str] = []

        def on_delivery(err: object, msg: object) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                delivered.append(TopicPartition(msg.topic(), msg.partition(), msg.offset()))  # type: ignore[attr-defined]

        producer.produce(topic, value=probe, on_delivery=on_delivery)
        remaining = producer.flush(timeout)
        if remaining or errors or not delivered:
            raise InfrastructureUnavailable(
                f"kafka: no acknowledgement from {where}: {errors[0] if errors else 'timed out'}"
            )
        consumer = kafka_consumer(settings, group_id=f"soma-health-{probe.decode()}")
        try:
            consumer.assign(delivered)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None and msg.value() == probe:
                    return Health("kafka", settings.kafka.bootstrap, f"round trip via {topic}")
            raise InfrastructureUnavailable(f"kafka: record produced to {where} was not read back")
        finally:
            consumer.close()
    except KafkaException as exc:
        raise InfrastructureUnavailable(f"kafka: unreachable at {where}: {_first_line(exc)}") from exc


def postgres_ping(settings: Settings) -> Health:
    url = settings.sqlalchemy_url()
    address = f"{url.host}:{url.port or 5432}/{url.database}"
    engine = database_engine(settings, pool_pre_ping=False)
    try:
        with database_errors(settings), engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
            conn.execute(text("SELECT 1")).scalar_one()
    finally:
        engine.dispose()
    return Health("postgresql", address, f"SELECT 1 ok, server {version}")


def redis_ping(settings: Settings) -> Health:
    import redis

    address = mask_url(settings.redis_url_value())
    client = redis_client(settings)
    try:
        client.ping()
        version = client.info("server").get("redis_version", "?")
    except redis.RedisError as exc:
        raise InfrastructureUnavailable(
            f"redis: unreachable at {address} ({env_name('redis_url')}): {_first_line(exc)}"
        ) from exc
    finally:
        client.close()
    return Health("redis", address, f"PING ok, server {version}")


CHECKS = {"kafka": kafka_round_trip, "postgresql": postgres_ping, "redis": redis_ping}
