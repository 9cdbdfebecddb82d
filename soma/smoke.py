"""The smoke check `soma up` ends with: one ChatMessage produced and read back through the broker."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import TopicPartition

from soma.catalog import load_catalog
from soma.clients import kafka_consumer
from soma.codec import Codec
from soma.errors import InfrastructureUnavailable
from soma.events import EventProducer
from soma.settings import Settings

TOPIC = "chat.messages"


@dataclass(frozen=True)
class SmokeResult:
    event_id: str
    topic: str
    partition: int
    offset: int
    elapsed_ms: float


def chat_round_trip(settings: Settings, timeout_s: float = 30.0) -> SmokeResult:
    """Produce one system message for tenant `smoke`, then read exactly that record back and decode it."""
    catalog = load_catalog()
    codec = Codec(catalog, settings)
    started = time.monotonic()
    event = {"session_id": f"smoke-{uuid.uuid4().hex[:8]}", "sequence": 1, "role": "system",
             "content": "soma up smoke check"}
    delivered = EventProducer(settings, catalog, codec).send(TOPIC, event, tenant="smoke")
    consumer = kafka_consumer(settings, group_id=f"soma-smoke-{uuid.uuid4().hex[:8]}")
    try:
        consumer.assign([TopicPartition(settings.topic_name(TOPIC), delivered.partition, delivered.offset)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                value = codec.decode(TOPIC, msg.value() or b"")
                if value["event_id"] == delivered.event_id:
                    elapsed_ms = (time.monotonic() - started) * 1000
                    return SmokeResult(delivered.event_id, TOPIC, delivered.partition, delivered.offset, elapsed_ms)
    finally:
        consumer.close()
    raise InfrastructureUnavailable(f"smoke: {TOPIC} record {delivered.event_id} was not read back in {timeout_s:.0f}s")
