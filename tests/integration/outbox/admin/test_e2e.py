"""A replay end to end: writer -> relay -> Kafka, replay over HTTP, relay again, both records on the wire.

Runs in a PostgreSQL schema of its own, so the relay drains only this test's rows.
"""

from __future__ import annotations

import json
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from outbox.admin.api import create_app
from outbox.models import OutboxEvent
from outbox.writer import OutboxWriter
from soma.clients import database_engine
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import EventConsumer
from soma.settings import Settings
from tests.support.outbox_admin import ADMIN_TOKEN, with_tokens
from tests.support.procs import run_soma
from tests.support.samples import sample


def _drain(settings: Settings) -> None:
    result = run_soma(settings, "outbox", "relay", "--drain", "--no-metrics", "--quiet", timeout_s=120)
    assert result.returncode == 0, result.stderr


def test_a_replayed_record_reaches_kafka_with_replay_of_and_the_original_dedupe_key(own_db: Settings) -> None:
    settings = own_db
    tenant = f"e2e-{uuid.uuid4().hex[:8]}"
    ensured = run_soma(settings, "topics", "ensure", timeout_s=120)
    assert ensured.returncode == 0, ensured.stderr
    catalog = load_catalog()
    codec = Codec(catalog, settings)
    engine = database_engine(settings)
    with Session(engine) as session, session.begin():
        original = OutboxWriter(catalog, codec, settings).emit(
            session, "chat.messages", sample("chat.messages", tenant), tenant=tenant, dedupe_key="msg-1"
        )
        original_id, event_id = original.id, original.event_id
    _drain(settings)

    app = create_app(with_tokens(settings, tenant, f"other-{tenant}"), engine=engine)
    with TestClient(app) as client:
        response = client.post(
            "/admin/outbox/replay", json={"ids": [original_id]}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
    assert response.status_code == 200, response.text
    audit_id = response.json()["audit_event_id"]
    replay_id = response.json()["sample"][0]["replay_id"]
    _drain(settings)
    with engine.connect() as conn:
        statuses = {row.id: row.status for row in conn.execute(select(OutboxEvent.id, OutboxEvent.status))}
    assert statuses[original_id] == "sent"
    assert statuses[replay_id] == "sent"
    assert set(statuses.values()) == {"sent"}  # the audit event too
    engine.dispose()

    def read(topic: str, count: int) -> list[dict[str, object]]:
        consumer = EventConsumer(
            settings, catalog, codec, [topic], group_id=f"e2e-{uuid.uuid4().hex}", from_beginning=True, commit=False
        )
        found: list[dict[str, object]] = []
        try:
            for event in consumer.events(idle_timeout_s=10):
                if event.headers.get("tenant") == tenant:
                    found.append({"headers": event.headers, "value": event.value})
                    if len(found) == count:
                        break
        finally:
            consumer.close()
        assert len(found) == count, found
        return found

    first, again = read("chat.messages", 2)
    assert "replay-of" not in first["headers"]
    assert again["headers"]["replay-of"] == str(original_id)
    assert again["headers"]["dedupe-key"] == first["headers"]["dedupe-key"] == "msg-1"
    assert again["value"] == first["value"]
    assert again["value"]["event_id"] == event_id  # type: ignore[index]
    [audit] = read("outbox.audit", 1)
    value = audit["value"]
    assert isinstance(value, dict)
    assert value["event_id"] == audit_id
    assert value["action"] == "outbox.replay"
    assert value["actor"] == "root-ops"
    assert value["target_tenant"] == tenant
    assert json.loads(value["details_json"])["count"] == 1
    assert audit["headers"]["dedupe-key"] == f"audit:{audit_id}"
