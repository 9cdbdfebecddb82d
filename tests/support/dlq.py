"""Helpers for the dead-letter tests: a private `dlq` topic and dead letters as a stream writes them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka.admin import NewTopic

from soma.clients import kafka_admin, kafka_producer
from soma.contracts.catalog import Catalog
from soma.contracts.codec import Codec
from soma.contracts.events import prepare
from soma.contracts.samples import sample
from soma.dlq.select import LetterId
from soma.settings import Settings


def private_topics(settings: Settings, *logical: str) -> Settings:
    """Settings with a prefix of their own (under the run's, so the run's cleanup removes it), topics created."""
    own = settings.replace(topic_prefix=f"{settings.kafka.topic_prefix}dlq{uuid.uuid4().hex[:8]}.")
    if logical:
        admin = kafka_admin(own)  # kept until the futures resolve: collecting it destroys the handle
        futures = admin.create_topics(
            [NewTopic(own.topic_name(t), num_partitions=1, replication_factor=1) for t in logical]
        )
        for future in futures.values():
            future.result(timeout=30)
    return own


def original(catalog: Catalog, codec: Codec, settings: Settings, tenant: str, n: int = 1,
             topic: str = "chat.messages") -> tuple[bytes, bytes, dict[str, bytes]]:
    """A valid record of `topic` as the producer sends it: key, value, headers."""
    record = prepare(catalog, codec, settings, topic, sample(topic, tenant, n), tenant=tenant)
    return record.key, record.value, dict(record.headers)


def dead_letter(
    tenant: str, *, key: bytes | None, value: bytes | None, headers: dict[str, bytes],
    source_topic: str = "chat.messages", stream: str = "worker", error_type: str = "processing",
    error: str = "ValueError: boom", offset: int = 0, **extra: Any,
) -> dict[str, Any]:
    """A DeadLetter event value, as streams/runtime/records.py builds it."""
    return {
        "event_id": str(uuid.uuid4()), "tenant_id": tenant, "occurred_at": datetime.now(UTC),
        "stream": stream, "source_topic": source_topic, "source_partition": 0, "source_offset": offset,
        "error_type": error_type, "error": error, "original_key": key, "original_value": value,
        "headers": headers, **extra,
    }


def write(
    settings: Settings, codec: Codec, letters: Iterable[dict[str, Any]], raw: Iterable[bytes] = ()
) -> list[LetterId]:
    """Produce these dead letters (and raw `dlq` records) to the `dlq` topic; their ids, acknowledged."""
    producer = kafka_producer(settings)
    ids: list[LetterId] = []
    failures: list[str] = []

    def done(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(err.str())
        else:
            ids.append(LetterId(msg.partition(), msg.offset()))

    for value in [codec.encode("dlq", letter) for letter in letters] + list(raw):
        producer.produce(settings.topic_name("dlq"), value=value, headers=[("tenant", b"x")], on_delivery=done)
        producer.flush(30)  # one at a time: ids in order
    assert not failures, failures
    return ids


def read_all(settings: Settings, logical: str, timeout_s: float = 30.0) -> list[Any]:
    """Every record of a one-partition topic, from the beginning to its end (bounded)."""
    import time

    from confluent_kafka import KafkaError, TopicPartition

    from soma.clients import kafka_consumer

    consumer = kafka_consumer(settings, f"test-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(settings.topic_name(logical), 0, 0)])
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return records
                continue
            records.append(msg)
        raise AssertionError(f"{logical}: no end of partition within {timeout_s}s")
    finally:
        consumer.close()
