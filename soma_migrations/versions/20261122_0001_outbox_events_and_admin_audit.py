"""outbox events and admin audit

Revision ID: 0001
Revises:
Create Date: 2026-11-22 09:26:33.466259
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "admin_audit",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("outcome", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_audit")),
        sa.UniqueConstraint("event_id", name=op.f("uq_admin_audit_event_id")),
    )
    op.create_index(
        op.f("ix_admin_audit_tenant_id_occurred_at"), "admin_audit", ["tenant_id", "occurred_at"], unique=False
    )
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("dedupe_key", sa.String(length=400), nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column(
            "headers", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed', 'dead')", name=op.f("ck_outbox_events_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
        sa.UniqueConstraint("tenant_id", "dedupe_key", name=op.f("uq_outbox_events_tenant_id_dedupe_key")),
    )
    op.create_index(
        "ix_outbox_events_due",
        "outbox_events",
        ["tenant_id", "next_attempt_at", "id"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'failed')"),
    )
    op.create_index(
        op.f("ix_outbox_events_status_tenant_id_created_at"),
        "outbox_events",
        ["status", "tenant_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_events_status_tenant_id_created_at"), table_name="outbox_events")
    op.drop_index(
        "ix_outbox_events_due", table_name="outbox_events", postgresql_where=sa.text("status IN ('pending', 'failed')")
    )
    op.drop_table("outbox_events")
    op.drop_index(op.f("ix_admin_audit_tenant_id_occurred_at"), table_name="admin_audit")
    op.drop_table("admin_audit")
