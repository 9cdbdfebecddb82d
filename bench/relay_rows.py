"""The relay benchmark's ground: a private schema and topics on the local stack, and 1 KB outbox rows.

Used by bench/relay_bench.py; everything here is dropped when `bench_environment()` exits.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka.admin import NewTopic
from sqlalchemy import Engine, text

from outbox.writer import Emission, OutboxWriter
from soma.clients import kafka_admin
from soma.contracts.catalog import load_catalog
from soma.ops.isolation import isolated_run
from soma.ops.processes import run_soma
from soma.ops.stack.system import is_loopback
from soma.settings import Settings, load_settings

TOPIC = "chat.messages"
TENANTS = [f"tenant-{n}" for n in range(10)]
COPY = (
    "COPY outbox_events (tenant_id, dedupe_key, topic, key, headers, payload, event_type, event_id)"
    " FROM STDIN"
)


@contextmanager
def bench_environment() -> Iterator[Settings]:
    base = load_settings()
    url = base.sqlalchemy_url()
    if not all(is_loopback(host) for host, _ in base.kafka_servers) or not is_loopback(url.host or ""):
        raise SystemExit("relay_bench: runs against the local stack only (loopback Kafka and PostgreSQL)")
    with isolated_run(base, "bench", uuid.uuid4().hex[:8]) as settings:
        result = run_soma(settings, "db", "upgrade", timeout_s=120)
        if result.returncode != 0:
            raise SystemExit(f"relay_bench: migration failed: {result.stderr.strip()}")
        catalog = load_catalog()
        spec = catalog.topic(TOPIC)
        admin = kafka_admin(settings)
        topics = [settings.topic_name(TOPIC), settings.topic_name("bench.raw")]
        for future in admin.create_topics([NewTopic(t, num_partitions=spec.partitions, replication_factor=1)
                                           for t in topics]).values():
            future.result(timeout=30)
        yield settings


def one_kb_events(writer: OutboxWriter, count: int) -> list[dict[str, Any]]:
    """`count` distinct outbox rows as the writer builds them, each value 1 KB encoded.

    The text is random hex (compresses about 2:1 with lz4, like real text), not one repeated
    character, so neither side gets an unrealistically cheap broker.
    """
    rng = random.Random(42)
    probe = writer.prepare(Emission(TOPIC, {"session_id": "s-0", "sequence": 0, "role": "user", "content": ""},
                                    TENANTS[0], "d-0"))
    pad = 1024 - len(probe["payload"]) - 1  # content is a length-prefixed string (2-byte varint at this size)
    rows = []
    for n in range(count):
        content = rng.getrandbits(pad * 4).to_bytes(pad // 2 + 1, "big").hex()[:pad]
        event = {"session_id": f"s-{n % 500}", "sequence": n, "role": "user", "content": content}
        rows.append(writer.prepare(Emission(TOPIC, event, TENANTS[n % len(TENANTS)], f"d-{n}")))
    return rows


def copy_rows(engine: Engine, rows: list[dict[str, Any]], repeat: int = 1) -> None:
    """Bulk-load prepared rows as pending (COPY); `repeat` > 1 reuses payloads under new dedupe keys."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor, cursor.copy(COPY) as copy:  # type: ignore[attr-defined]
            for r in range(repeat):
                for row in rows:
                    dedupe = row["dedupe_key"] if repeat == 1 else f"{row['dedupe_key']}-{r}"
                    headers = dict(row["headers"], **{"dedupe-key": dedupe})
                    copy.write_row((row["tenant_id"], dedupe, row["topic"], row["key"], json.dumps(headers),
                                    row["payload"], row["event_type"], row["event_id"]))
        raw.commit()
    finally:
        raw.close()
    vacuum(engine)


def vacuum(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE outbox_events"))


def truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE outbox_events"))
