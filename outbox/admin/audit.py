"""The admin audit trail: one `admin_audit` row and one AdminAudit event on `outbox.audit` per action.

`record` writes both on the caller's connection, so they commit (or roll back) with the
action they describe. The event is emitted through the outbox writer like any other event
(validated and encoded first, dedupe key ``audit:<event id>``); the relay publishes it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert
from sqlalchemy.orm import Session

from outbox.models import AdminAudit
from outbox.writer import OutboxWriter
from soma.contracts.catalog import Catalog
from soma.contracts.codec import Codec
from soma.settings import Settings

AUDIT_TOPIC = "outbox.audit"


def new_event_id() -> str:
    return str(uuid.uuid4())


def now_ms() -> datetime:
    """Now, in UTC, at millisecond precision (what an Avro timestamp-millis carries)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class AuditEntry:
    """One admin action: who did what to which tenant, with what outcome."""

    actor: str
    action: str
    tenant: str
    outcome: str
    details: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=new_event_id)
    occurred_at: datetime = field(default_factory=now_ms)

    def event(self) -> dict[str, Any]:
        """The AdminAudit event value (soma/catalog/schemas): the audited tenant is also the event's tenant."""
        return {
            "event_id": self.event_id,
            "tenant_id": self.tenant,
            "occurred_at": self.occurred_at,
            "actor": self.actor,
            "action": self.action,
            "target_tenant": self.tenant,
            "details_json": json.dumps(self.details, sort_keys=True, separators=(",", ":")),
            "outcome": self.outcome,
        }


def record(conn: Connection, entry: AuditEntry, *, catalog: Catalog, codec: Codec, settings: Settings) -> None:
    """Write the audit row and emit the AdminAudit event (through the outbox writer), in `conn`'s transaction."""
    writer = OutboxWriter(catalog, codec, settings)
    conn.execute(
        insert(AdminAudit).values(
            event_id=entry.event_id, occurred_at=entry.occurred_at, actor=entry.actor, action=entry.action,
            tenant_id=entry.tenant, details=entry.details, outcome=entry.outcome,
        )
    )
    # A session on the caller's connection joins its transaction; closing it commits nothing.
    with Session(bind=conn) as session:
        writer.emit(session, AUDIT_TOPIC, entry.event(), tenant=entry.tenant, dedupe_key=f"audit:{entry.event_id}")
        session.flush()


def emit_audited(engine: Engine, topic: str, event: dict[str, Any], entry: AuditEntry, *, dedupe_key: str,
                 catalog: Catalog, codec: Codec, settings: Settings) -> None:
    """Emit `event` (of the entry's tenant) through the outbox and record `entry`, in one transaction:
    the event exists exactly when its audit does."""
    from outbox.admin.queries import admin_db_errors

    writer = OutboxWriter(catalog, codec, settings)
    with admin_db_errors(settings), engine.begin() as conn:
        with Session(bind=conn) as session:  # joins the connection's transaction
            writer.emit(session, topic, event, tenant=entry.tenant, dedupe_key=dedupe_key)
            session.flush()
        record(conn, entry, catalog=catalog, codec=codec, settings=settings)
