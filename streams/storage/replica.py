"""The memory replica table and its idempotent, order-safe write.

One row per (tenant, memory key). A write applies only when its (occurred_at, event_id) is
newer than the row's: a replayed or redelivered event (same id) changes nothing, and a delete
(kept as a tombstone row) is not undone by an older upsert arriving later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, MetaData
from sqlalchemy.dialects.postgresql import JSONB, insert

from soma.contracts.bounded_json import loads_bounded
from streams.errors import InvalidInput

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

memory_replica = sa.Table(
    "memory_replica",
    metadata,
    sa.Column("tenant_id", sa.String(200), nullable=False),
    sa.Column("memory_key", sa.String(400), nullable=False),
    sa.Column("session_id", sa.String(200), nullable=True),
    sa.Column("payload", JSONB(), nullable=True),
    sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    sa.Column("last_event_id", sa.String(64), nullable=False),
    sa.Column("last_occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("tenant_id", "memory_key"),
)


def row_for(write: Mapping[str, Any]) -> dict[str, Any]:
    """The replica row of a decoded MemoryWrite; an unusable payload raises InvalidInput (invalid JSON) or
    `JsonLimitExceeded` (too large or too deeply nested for `soma.contracts.bounded_json`)."""
    operation = str(write["operation"])
    payload: Any = None
    if operation == "upsert":
        text = write.get("payload_json")
        if text is None:
            raise InvalidInput("upsert without payload_json")
        try:
            payload = loads_bounded(text, "payload_json")
        except ValueError as exc:
            raise InvalidInput(f"payload_json is not JSON: {exc}") from exc
    occurred = write["occurred_at"]
    if not isinstance(occurred, datetime):
        occurred = datetime.fromtimestamp(int(occurred) / 1000, UTC)
    return {
        "tenant_id": write["tenant_id"], "memory_key": write["memory_key"], "session_id": write.get("session_id"),
        "payload": payload, "deleted": operation == "delete", "last_event_id": write["event_id"],
        "last_occurred_at": occurred,
    }


def apply_write(engine: Engine, row: Mapping[str, Any]) -> bool:
    """Upsert or tombstone the row unless the table already holds this or a newer write; True if applied."""
    return apply_writes(engine, [row])[0]


def apply_writes(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> list[bool]:
    """`apply_write` for many rows in one transaction (in order); whether each applied."""
    with engine.begin() as conn:
        return [bool(conn.execute(_upsert(row)).rowcount) for row in rows]


def _upsert(row: Mapping[str, Any]) -> Any:
    t = memory_replica
    stmt = insert(t).values(**row)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.tenant_id, t.c.memory_key],
        set_={
            "session_id": excluded.session_id, "payload": excluded.payload, "deleted": excluded.deleted,
            "last_event_id": excluded.last_event_id, "last_occurred_at": excluded.last_occurred_at,
            "applied_at": sa.func.now(),
        },
        where=sa.tuple_(t.c.last_occurred_at, t.c.last_event_id)
        < sa.tuple_(excluded.last_occurred_at, excluded.last_event_id),
    )
    return stmt
