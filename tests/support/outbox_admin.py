"""Helpers for the outbox admin tests: tenants and tokens, seed rows, read them back, clean up.

The schema is migrated by the `outbox_db` fixture (tests/integration/outbox/conftest.py).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, delete, func, insert, select

from outbox.models import AdminAudit, OutboxEvent
from soma.settings import Settings

# Tokens of the admin API in these tests (>= 16 visible ASCII characters each).
ADMIN_TOKEN = "adm-7c1d9e2f4a6b8c0d"
ACME_TOKEN = "acme-0f1e2d3c4b5a6978"
GLOBEX_TOKEN = "globex-1a2b3c4d5e6f7081"


def tenants(run: str) -> tuple[str, str]:
    """Two tenant ids no other test module uses."""
    suffix = uuid.uuid4().hex[:6]
    return f"acme-{run}-{suffix}", f"globex-{run}-{suffix}"


def with_tokens(settings: Settings, acme: str, globex: str, **extra: Any) -> Settings:
    tokens = {
        ADMIN_TOKEN: {"scope": "admin", "name": "root-ops"},
        ACME_TOKEN: f"tenant:{acme}",
        GLOBEX_TOKEN: {"scope": f"tenant:{globex}", "name": "globex-ops"},
    }
    return settings.replace(admin_tokens=SecretStr(json.dumps(tokens)), **extra)


def seed(
    engine: Engine,
    tenant: str,
    count: int,
    *,
    topic: str = "chat.messages",
    status: str = "pending",
    created_at: datetime | None = None,
) -> list[int]:
    """`count` outbox rows of `tenant` as the writer would leave them; their ids, ascending."""
    rows = []
    for _ in range(count):
        event_id = str(uuid.uuid4())
        dedupe = f"seed-{uuid.uuid4().hex}"
        rows.append({
            "tenant_id": tenant, "dedupe_key": dedupe, "topic": topic, "key": f"{tenant}:s1",
            "headers": {
                "tenant": tenant, "dedupe-key": dedupe, "event-type": "soma.events.Seeded",
                "traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
            },
            "payload": b"\xc3\x01" + os.urandom(24), "event_type": "soma.events.Seeded", "event_id": event_id,
            "status": status, "created_at": created_at or datetime.now(UTC),
        })
    with engine.begin() as conn:
        ids = [row.id for row in conn.execute(insert(OutboxEvent).returning(OutboxEvent.id), rows)]
    return sorted(ids)


def rows_of(engine: Engine, tenant: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = select(*OutboxEvent.__table__.columns).where(OutboxEvent.tenant_id == tenant).order_by(OutboxEvent.id)
        return [dict(row) for row in conn.execute(query).mappings()]


def audits_of(engine: Engine, tenant: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = select(*AdminAudit.__table__.columns).where(AdminAudit.tenant_id == tenant).order_by(AdminAudit.id)
        return [dict(row) for row in conn.execute(query).mappings()]


def count_all(engine: Engine) -> tuple[int, int]:
    """(outbox rows, audit rows) in the whole schema."""
    with engine.connect() as conn:
        outbox = conn.execute(select(func.count()).select_from(OutboxEvent)).scalar_one()
        audit = conn.execute(select(func.count()).select_from(AdminAudit)).scalar_one()
    return outbox, audit


def forget(engine: Engine, tenant_ids: Iterable[str]) -> None:
    """Delete these tenants' rows, so later tests (a relay's, say) never meet them."""
    names = list(tenant_ids)
    with engine.begin() as conn:
        conn.execute(delete(OutboxEvent).where(OutboxEvent.tenant_id.in_(names)))
        conn.execute(delete(AdminAudit).where(AdminAudit.tenant_id.in_(names)))


@contextmanager
def sleep_redis(settings: Settings, tenant_ids: Iterable[str]) -> Iterator[Any]:
    """A Redis client for the tests of the sleep routes; the tenants' `sleep:{tenant}` keys deleted after."""
    from soma.clients import redis_client
    from soma.sleep.policy import redis_key

    client = redis_client(settings)
    try:
        yield client
    finally:
        client.delete(*(redis_key(t) for t in tenant_ids))
        client.close()
