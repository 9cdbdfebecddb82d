"""What the streams have to do, read from Kafka offsets: records written to each stream's inputs
(the profile's events per hop) and the records their consumer groups have not committed yet (the
backlog a sweep waits out between rates).

A stream's inputs are the catalog topics that name it among their consumers; its consumer group
is its Faust app id, `<topic prefix>soma-<name>` (streams/app.py). Reading committed offsets does
not join the group: nothing here disturbs the running streams.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from soma.contracts.catalog import Catalog
from soma.ops.supervisor.spec import STREAMS
from soma.settings import Settings


def inputs(catalog: Catalog, stream: str) -> list[str]:
    """Catalog topics that list `streams.<stream>` as a consumer."""
    name = f"streams.{stream}"
    return sorted(t.name for t in catalog.topics.values()
                  if any(c == name or c.startswith(name + " ") for c in t.consumers))


def _partitions(settings: Settings, catalog: Catalog, topics: Iterable[str]) -> list[tuple[str, int]]:
    return [(settings.topic_name(t), p) for t in topics for p in range(catalog.topic(t).partitions)]


def end_offsets(settings: Settings, catalog: Catalog, topics: Iterable[str]) -> dict[str, int]:
    """{topic: sum of the partitions' high watermarks}."""
    from confluent_kafka import TopicPartition

    from soma.clients import kafka_consumer

    consumer = kafka_consumer(settings, f"soma-bench-offsets-{uuid.uuid4().hex[:6]}")
    try:
        out: dict[str, int] = {}
        for topic in topics:
            out[topic] = sum(consumer.get_watermark_offsets(TopicPartition(physical, p),
                                                            timeout=settings.kafka.timeout_s)[1]
                             for physical, p in _partitions(settings, catalog, [topic]))
        return out
    finally:
        consumer.close()


def stream_lag(settings: Settings, catalog: Catalog) -> dict[str, int]:
    """{stream: records on its inputs past its group's committed offsets} for the five streams."""
    from confluent_kafka import TopicPartition

    from soma.clients import kafka_consumer

    lag: dict[str, int] = {}
    for stream in STREAMS:
        parts = _partitions(settings, catalog, inputs(catalog, stream.name))
        consumer = kafka_consumer(settings, f"{settings.kafka.topic_prefix}soma-{stream.name}")
        try:
            committed = consumer.committed([TopicPartition(t, p) for t, p in parts], timeout=settings.kafka.timeout_s)
            total = 0
            for tp in committed:
                low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                           timeout=settings.kafka.timeout_s)
                total += high - (tp.offset if tp.offset >= 0 else low)
            lag[stream.name] = total
        finally:
            consumer.close()
    return lag


def wait_drained(settings: Settings, catalog: Catalog, timeout_s: float) -> dict[str, int]:
    """Until no stream has uncommitted input (or `timeout_s`); the last lag seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag = stream_lag(settings, catalog)
        if not any(lag.values()) or time.monotonic() > deadline:
            return lag
        time.sleep(1.0)
