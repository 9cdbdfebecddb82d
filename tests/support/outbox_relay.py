"""Helpers for the writer and relay tests: migrate, bulk-insert pre-encoded rows, run relays, read Kafka."""

from __future__ import annotations

import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest
from alembic import command
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import NewTopic
from sqlalchemy import Engine, text
from sqlalchemy.schema import CreateSchema, DropSchema

from soma.clients import database_engine, kafka_admin, kafka_consumer
from soma.ops.migrations import alembic_config
from soma.settings import Settings
from tests.support.procs import SOMA, background, wait_for


def migrate(settings: Settings) -> None:
    """`alembic upgrade head` in the run's schema (soma_migrations/env.py reads settings from the environment)."""
    config = alembic_config()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOMA_DATABASE_SCHEMA", settings.database.database_schema or "public")
        command.upgrade(config, "head")


@contextmanager
def own_schema(settings: Settings, suffix: str) -> Iterator[Settings]:
    """The run's settings with a PostgreSQL schema of their own, migrated; dropped at the end.

    A relay claims every due row of its schema, so relay tests keep theirs apart from other modules' rows.
    """
    name = f"{settings.database.database_schema or 'test'}_{suffix}"
    engine = database_engine(settings)
    with engine.begin() as conn:
        conn.execute(CreateSchema(name, if_not_exists=True))
    own = settings.replace(database_schema=name)
    try:
        migrate(own)
        yield own
    finally:
        with engine.begin() as conn:
            conn.execute(DropSchema(name, cascade=True, if_exists=True))
        engine.dispose()


def truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE outbox_events"))


# Fixtures of the test folders that act on the whole table (the relay's, retention's): a conftest imports them.
@pytest.fixture(scope="module")
def outbox_db(own_db: Settings) -> Settings:
    """The folder's tests run in a schema of their own (see `own_db`)."""
    return own_db


@pytest.fixture(autouse=True)
def empty_outbox(engine: Engine) -> None:
    """Emptied before each test."""
    truncate(engine)


def create_topic(settings: Settings, partitions: int = 1) -> str:
    """A fresh topic under the run's prefix; returns its logical name (what outbox rows store)."""
    logical = f"t.relay.{uuid.uuid4().hex[:10]}"
    admin = kafka_admin(settings)
    futures = admin.create_topics([NewTopic(settings.topic_name(logical), num_partitions=partitions,
                                            replication_factor=1)])
    for future in futures.values():
        future.result(timeout=30)
    return logical


# Rows as the writer leaves them, generated server-side: one INSERT for any number of rows.
INSERT_ROWS = text(
    """
INSERT INTO outbox_events (tenant_id, dedupe_key, topic, key, headers, payload, event_type, event_id)
SELECT p.tenant, p.prefix || g, p.topic, p.key,
       jsonb_build_object('tenant', p.tenant, 'dedupe-key', p.prefix || g, 'event-type', p.event_type,
                          'traceparent', '00-' || md5(p.prefix || g) || '-' || left(md5(g::text), 16) || '-01'),
       p.payload, p.event_type, md5(p.prefix || g)
  FROM (SELECT CAST(:tenant AS text) AS tenant, CAST(:prefix AS text) AS prefix, CAST(:topic AS text) AS topic,
               CAST(:key AS text) AS key, CAST(:event_type AS text) AS event_type,
               CAST(:payload AS bytea) AS payload) AS p,
       generate_series(1, :count) AS g
"""
)


def insert_rows(
    engine: Engine, tenant: str, count: int, topic: str, *, payload: bytes = b"\xc3\x01" + b"x" * 64,
    key: str | None = None, prefix: str | None = None,
) -> str:
    """`count` pending rows of `tenant` (dedupe keys `<prefix><n>`); returns the prefix."""
    prefix = prefix or f"{tenant}-{uuid.uuid4().hex[:6]}-"
    with engine.begin() as conn:
        conn.execute(INSERT_ROWS, {
            "tenant": tenant, "prefix": prefix, "topic": topic, "key": key or f"{tenant}:s",
            "payload": payload, "event_type": "soma.events.ChatMessage", "count": count,
        })
    return prefix


def status_counts(engine: Engine, tenant: str | None = None) -> dict[str, int]:
    query = text(
        "SELECT status, count(*) FROM outbox_events WHERE (CAST(:tenant AS text) IS NULL OR tenant_id = :tenant)"
        " GROUP BY status"
    )
    with engine.connect() as conn:
        return {str(s): int(n) for s, n in conn.execute(query, {"tenant": tenant})}


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: str
    headers: dict[str, str]
    value: bytes


def consume_all(settings: Settings, logical: str, timeout_s: float = 60.0) -> list[Record]:
    """Every record of the topic, from the beginning up to each partition's end as of this call."""
    physical = settings.topic_name(logical)
    consumer = kafka_consumer(settings, f"test-{uuid.uuid4().hex[:8]}")
    records: list[Record] = []
    try:
        metadata = consumer.list_topics(physical, timeout=10)
        ends = {}
        for partition in metadata.topics[physical].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(physical, partition), timeout=10)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(physical, p, 0) for p in ends])
        positions = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + timeout_s
        while any(positions[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise AssertionError(f"{physical}: read {len(records)} records, partitions not at their end in time")
            for msg in consumer.consume(10_000, timeout=0.5):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consume failed: {error.str()}")
                partition, offset = msg.partition() or 0, msg.offset() or 0
                positions[partition] = offset + 1
                records.append(Record(
                    partition, offset, (msg.key() or b"").decode(),
                    {k: (v or b"").decode() for k, v in msg.headers() or []}, msg.value() or b"",
                ))
    finally:
        consumer.close()
    return records


def relay_settings(settings: Settings, **fields: Any) -> Settings:
    """The run's settings with relay overrides (metrics on a free port unless given)."""
    fields.setdefault("outbox_relay_metrics_port", 0)
    return settings.replace(**fields)


@contextmanager
def relay_process(settings: Settings, log_file: Path, *args: str, lifetime_s: float = 300.0) -> Iterator[Popen[bytes]]:
    """`soma outbox relay` as a bounded child in its own process group (SIGTERM, then SIGKILL, at exit)."""
    with background([*SOMA, "outbox", "relay", *args], settings, log_file, max_lifetime_s=lifetime_s,
                    grace_s=45.0) as proc:
        yield proc


def metrics_url(log_file: Path, timeout_s: float = 30.0) -> str:
    """The relay's metrics address, from its start line."""
    found: list[str] = []

    def started() -> bool:
        match = re.search(r"metrics (http://[0-9.]+:[0-9]+)", log_file.read_text(errors="replace"))
        if match:
            found.append(match.group(1))
        return bool(match)

    wait_for(started, timeout_s, what=f"relay start line in {log_file}")
    return found[0]


def scrape(url: str) -> dict[str, float]:
    """`/metrics` as {'name{labels}': value} (comments dropped), each sample checked for `service="relay"`,
    which is then left out of the key."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:  # noqa: S310
        body = response.read().decode()
    values = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            assert 'service="relay"' in name, f"sample without the service label: {line}"
            key = name.replace('service="relay"', "").replace("{,", "{").replace(",,", ",").replace(",}", "}")
            values[key.replace("{}", "")] = float(value)
    return values
