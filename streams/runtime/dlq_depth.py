"""How many records the DLQ topic holds (end - beginning offsets over its partitions)."""

from __future__ import annotations

from soma.settings import Settings
from streams.runtime.auth import aiokafka_security


async def dlq_depth(settings: Settings, partitions: int) -> int:
    """Records retained in the `dlq` topic: a short-lived, group-less consumer asks the broker."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
        client_id=f"{settings.kafka_client_id}-dlq-depth", **aiokafka_security(settings),
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_name("dlq"), p) for p in range(partitions)]
        first = await consumer.beginning_offsets(tps)
        last = await consumer.end_offsets(tps)
        return sum(max(0, last[tp] - first[tp]) for tp in tps)
    finally:
        await consumer.stop()
