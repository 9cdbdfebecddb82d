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
from sqlalchemy.dialects.postgresql import JSONB

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
    `JsonLimitExceeded` (too large or too deeply nested for `soma.contracts.bounded_json`).

    The payload is checked here but sent to PostgreSQL as the write's own JSON text (`payload_json`),
    so it is parsed once in Python and never serialized again."""
    operation = str(write["operation"])
    text: str | None = None
    if operation == "upsert":
        text = write.get("payload_json")
        if text is None:
            raise InvalidInput("upsert without payload_json")
        try:
            loads_bounded(text, "payload_json")
        except ValueError as exc:
            raise InvalidInput(f"payload_json is not JSON: {exc}") from exc
    occurred = write["occurred_at"]
    if not isinstance(occurred, datetime):
        occurred = datetime.fromtimestamp(int(occurred) / 1000, UTC)
    return {
        "tenant_id": write["tenant_id"], "memory_key": write["memory_key"], "session_id": write.get("session_id"),
        "payload_json": text, "deleted": operation == "delete", "last_event_id": write["event_id"],
        "last_occurred_at": occurred,
    }


# One statement for a whole batch: the rows travel as one array per column (a fixed statement,
# prepared once, whatever the batch size). A write applies only when newer than the row it meets.
UPSERT = sa.text("""
INSERT INTO memory_replica AS t
    (tenant_id, memory_key, session_id, payload, deleted, last_event_id, last_occurred_at, applied_at)
SELECT w.tenant_id, w.memory_key, w.session_id, CAST(w.payload_json AS jsonb), w.deleted, w.last_event_id,
       w.last_occurred_at, now()
FROM unnest(CAST(:tenant_ids AS varchar[]), CAST(:memory_keys AS varchar[]), CAST(:session_ids AS varchar[]),
            CAST(:payloads AS text[]), CAST(:deleted AS boolean[]), CAST(:event_ids AS varchar[]),
            CAST(:occurred AS timestamptz[]))
    AS w(tenant_id, memory_key, session_id, payload_json, deleted, last_event_id, last_occurred_at)
ON CONFLICT (tenant_id, memory_key) DO UPDATE SET
    session_id = EXCLUDED.session_id, payload = EXCLUDED.payload, deleted = EXCLUDED.deleted,
    last_event_id = EXCLUDED.last_event_id, last_occurred_at = EXCLUDED.last_occurred_at, applied_at = now()
WHERE (t.last_occurred_at, t.last_event_id) < (EXCLUDED.last_occurred_at, EXCLUDED.last_event_id)
RETURNING t.tenant_id, t.memory_key
""")


def apply_write(engine: Engine, row: Mapping[str, Any]) -> bool:
    """Upsert or tombstone the row unless the table already holds this or a newer write; True if applied."""
    return apply_writes(engine, [row])[0]


def _version(row: Mapping[str, Any]) -> tuple[datetime, str]:
    return row["last_occurred_at"], str(row["last_event_id"])


def newest_per_key(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """The newest write of each (tenant, memory key) of a batch: the one the table ends up holding.

    PostgreSQL refuses to touch one row twice in a statement, and applying a batch in order leaves
    exactly each key's newest write (the older ones either lose the version check or are overwritten)."""
    newest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for row in rows:
        key = (str(row["tenant_id"]), str(row["memory_key"]))
        if key not in newest or _version(newest[key]) < _version(row):
            newest[key] = row
    return newest


def apply_writes(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> list[bool]:
    """Apply a batch in one statement, with the effect of applying it in order; whether each write applied.

    A write of a key whose newest write applied counts as applied when it is newer than every earlier
    write of its key in the batch (in order, it would have applied, then been overwritten); the
    statement cannot tell whether it would also have lost to the row the table held before."""
    newest = newest_per_key(rows)
    winners = list(newest.values())
    with engine.begin() as conn:
        result = conn.execute(UPSERT, {
            "tenant_ids": [r["tenant_id"] for r in winners], "memory_keys": [r["memory_key"] for r in winners],
            "session_ids": [r["session_id"] for r in winners], "payloads": [r["payload_json"] for r in winners],
            "deleted": [r["deleted"] for r in winners], "event_ids": [r["last_event_id"] for r in winners],
            "occurred": [r["last_occurred_at"] for r in winners],
        })
        changed = {(str(tenant), str(key)) for tenant, key in result}
    applied: list[bool] = []
    latest: dict[tuple[str, str], tuple[datetime, str]] = {}
    for row in rows:
        key = (str(row["tenant_id"]), str(row["memory_key"]))
        newer = key not in latest or latest[key] < _version(row)
        applied.append(key in changed and newer)
        if newer:
            latest[key] = _version(row)
    return applied
