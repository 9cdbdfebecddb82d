"""The config_updates topic from a terminal: read every update, publish the next one, the values in effect.

The rules for applying an update live in `soma.live_config` (pure); this module does the I/O
around them: it reads the compacted topic to its end, and publishes a validated change with
the next version and its checksum (`soma config set|show`, and the demo's live changes).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import time
from dataclasses import dataclass
from typing import Any

from soma.settings import Settings


def read_updates(s: Settings) -> tuple[list[dict[str, Any]], Any]:
    """Every decodable ConfigUpdate on the (compacted) topic, oldest first, and the codec."""
    from confluent_kafka import TopicPartition

    from soma.clients import kafka_consumer
    from soma.contracts.catalog import catalog_for
    from soma.contracts.codec import Codec
    from soma.errors import InfrastructureUnavailable, SomaError

    catalog = catalog_for(s)
    codec = Codec(catalog, s)
    physical = s.topic_name("config_updates")
    consumer = kafka_consumer(s, f"{s.kafka.client_id}-config-reader", **{"enable.auto.commit": False})
    updates: list[dict[str, Any]] = []
    try:
        parts = []
        for p in range(catalog.topic("config_updates").partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(physical, p), timeout=s.kafka.timeout_s)
            if high > low:
                parts.append((p, low, high))
        consumer.assign([TopicPartition(physical, p, low) for p, low, _ in parts])
        remaining = {p: high for p, _, high in parts}
        deadline = time.monotonic() + s.kafka.timeout_s * 3
        while remaining:
            if time.monotonic() > deadline:
                raise InfrastructureUnavailable(f"kafka: reading {physical} did not finish in time")
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            if msg.value():
                with contextlib.suppress(SomaError):
                    updates.append(codec.decode("config_updates", msg.value() or b""))
            if (msg.offset() or 0) + 1 >= remaining.get(msg.partition() or 0, 0):
                remaining.pop(msg.partition() or 0, None)
    except Exception as exc:
        if isinstance(exc, SomaError):
            raise
        raise InfrastructureUnavailable(f"kafka: cannot read {physical}: {exc}") from exc
    finally:
        consumer.close()
    return updates, codec


def publish(s: Settings, name: str, value: str, *, tenant: str | None = None,
            author: str | None = None) -> dict[str, Any]:
    """`soma config set` as a function: validate, publish with the next version; the event, offset and id."""
    from pydantic import BaseModel

    from soma.contracts.events import EventProducer
    from soma.errors import EventValidationError
    from soma.live_config import LIVE_FIELDS, canonical_json, checksum, field_for, parse_text

    field = field_for(name)
    if field is None:
        raise EventValidationError(
            f"{name!r} is not a live setting; live: {', '.join(sorted(f.upper() for f in LIVE_FIELDS))}"
        )
    try:
        parsed = None if value.strip().lower() == "null" else parse_text(field, value)
    except ValueError as exc:
        raise EventValidationError(str(exc)) from None
    if isinstance(parsed, BaseModel):  # an object setting (SLEEP_POLICY) travels as its JSON text, validated above
        parsed = canonical_json(json.loads(value))
    updates, codec = read_updates(s)
    current = max((int(u["version"]) for u in updates
                   if u["name"].lower() == field and (u.get("scope_tenant") or None) == tenant), default=0)
    event = {
        "name": field.upper(), "value": parsed, "scope_tenant": tenant, "version": current + 1,
        "checksum": checksum(parsed), "author": author or getpass.getuser(),
    }
    producer = EventProducer(s, codec.catalog, codec)
    delivered = producer.send("config_updates", event, tenant=tenant or "_global")
    return {**event, "offset": delivered.offset, "event_id": delivered.event_id}


@dataclass(frozen=True)
class Effective:
    """The live settings in effect (name, value, source) and the updates that were refused, with why."""

    settings: list[dict[str, Any]]
    rejected: list[dict[str, Any]]


def effective(s: Settings, tenant: str | None = None) -> Effective:
    """The base settings plus the valid updates on config_updates, as `tenant` (or every tenant) sees them."""
    from soma.live_config import LIVE_FIELDS, LiveConfig

    live = LiveConfig(s.streams.live)
    rejected = []
    updates, _ = read_updates(s)
    for update in updates:
        decision = live.apply(update)
        if not decision.accepted:
            rejected.append({"name": decision.name, "tenant": decision.scope, "reason": decision.reason})
    rows = []
    for field in sorted(LIVE_FIELDS):
        if tenant is not None and live.version(field, tenant):
            source = f"tenant {tenant} v{live.version(field, tenant)}"
        elif live.version(field):
            source = f"config_updates v{live.version(field)}"
        else:
            source = "settings"
        rows.append({"name": field.upper(), "value": live.get(field, tenant), "source": source})
    return Effective(rows, rejected)
