"""A sleep request and an async util sleep end to end: admin API -> outbox -> relay -> Kafka, as the
integrator and the tools stream will read them (key, partition, value, audit)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from outbox.admin.api import create_app
from soma.clients import database_engine
from soma.config_updates import publish
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import EventConsumer
from soma.contracts.partition import partition_for
from soma.settings import Settings
from tests.support.outbox_admin import ADMIN_TOKEN, with_tokens
from tests.support.procs import run_soma

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_a_sleep_request_and_a_sleep_tool_call_reach_kafka_keyed_by_tenant(own_db: Settings) -> None:
    tenant = f"e2e-sleep-{uuid.uuid4().hex[:8]}"
    ensured = run_soma(own_db, "topics", "ensure", timeout_s=120)
    assert ensured.returncode == 0, ensured.stderr
    settings = with_tokens(own_db, tenant, f"other-{tenant}", admin_live_cache_s=0.0)
    publish(settings, "ENABLE_SLEEP", "true", tenant=tenant, author="tests")
    engine = database_engine(settings)
    with TestClient(create_app(settings, engine=engine)) as client:
        asked = client.put("/admin/brain/sleep_mode", params={"tenant": tenant}, json={"state": "deep", "for": "10m"},
                           headers=ADMIN)
        called = client.post("/admin/util/sleep", params={"tenant": tenant}, json={"ms": 1500, "async": True},
                             headers=ADMIN)
    engine.dispose()
    assert asked.status_code == 202, asked.text
    assert called.status_code == 202, called.text
    drained = run_soma(settings, "outbox", "relay", "--drain", "--no-metrics", "--quiet", timeout_s=120)
    assert drained.returncode == 0, drained.stderr

    catalog = load_catalog()
    codec = Codec(catalog, settings)

    def read(topic: str, count: int) -> list[Any]:
        consumer = EventConsumer(settings, catalog, codec, [topic], group_id=f"e2e-{uuid.uuid4().hex}",
                                 from_beginning=True, commit=False)
        found = []
        try:
            for event in consumer.events(idle_timeout_s=10):
                if event.headers.get("tenant") == tenant:
                    found.append(event)
                    if len(found) == count:
                        break
        finally:
            consumer.close()
        assert len(found) == count, found
        return found

    [request] = read("cog.sleep_requests", 1)
    assert request.key == tenant
    # Co-partitioned with the tenant's predictor updates: the integrator that owns them decides it.
    partitions = catalog.topic("cog.predictor_updates").partitions
    assert request.partition == partition_for(tenant.encode(), partitions)
    assert request.value["event_id"] == asked.json()["request_id"]
    assert (request.value["to_state"], request.value["reason"], request.value["requested_by"]) == (
        "deep", "manual", "root-ops")
    [tool] = read("tool.requests", 1)
    assert tool.key == f"{tenant}:{called.json()['session_id']}"
    assert (tool.value["call_id"], tool.value["tool"]) == (called.json()["call_id"], "sleep")
    audits = read("outbox.audit", 2)
    assert {a.value["action"] for a in audits} == {"sleep_mode_set", "util_sleep"}
