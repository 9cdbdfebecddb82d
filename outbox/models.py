"""The outbox's tables: events waiting for (or done with) publication, and the admin audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so Alembic migrations and autogenerate agree.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}

Status = Literal["pending", "sent", "failed", "dead"]
STATUSES: tuple[str, ...] = get_args(Status)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class OutboxEvent(Base):
    """One event a service committed; the relay publishes it and records where it landed."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "dedupe_key"),
        # Unsent rows only (migration 0006): a sent row costs no entry here.
        Index(None, "status", "tenant_id", "created_at",
              postgresql_where=text("status IN ('pending', 'failed', 'dead')")),
        # The relay's claim query: due rows of one tenant in order, pending or retrying only.
        Index(
            "ix_outbox_events_due",
            "tenant_id",
            "next_attempt_at",
            "id",
            postgresql_where=text("status IN ('pending', 'failed')"),
        ),
        # Per-key order: a row waits while an older row of its (tenant, topic, key) waits for a retry.
        Index(
            "ix_outbox_events_key_failed",
            "tenant_id",
            "topic",
            "key",
            "id",
            postgresql_where=text("status = 'failed'"),
            postgresql_include=["next_attempt_at"],
        ),
        # The claim's check of each claimed key (outbox.relay.claim.KEY_BLOCKERS): its older unsent rows.
        Index(
            "ix_outbox_events_key_unsent",
            "tenant_id",
            "topic",
            "key",
            "id",
            postgresql_where=text("status IN ('pending', 'failed')"),
        ),
        CheckConstraint(f"status IN {STATUSES!r}", name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(200))
    dedupe_key: Mapped[str] = mapped_column(String(400))
    topic: Mapped[str] = mapped_column(String(249), doc="logical (catalog) topic name")
    key: Mapped[str] = mapped_column(Text, doc="record key, built from the catalog's key template")
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    payload: Mapped[bytes] = mapped_column(LargeBinary, doc="the encoded Avro value, exactly as published")
    event_type: Mapped[str] = mapped_column(String(200), doc="Avro full name of the value schema")
    event_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    partition: Mapped[int | None] = mapped_column(Integer)
    offset: Mapped[int | None] = mapped_column(BigInteger)


class AdminAudit(Base):
    """Every admin action (replays above all): who, what, on which tenant, with what outcome."""

    __tablename__ = "admin_audit"
    __table_args__ = (Index(None, "tenant_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    tenant_id: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    outcome: Mapped[str] = mapped_column(String(100))


metadata = Base.metadata
