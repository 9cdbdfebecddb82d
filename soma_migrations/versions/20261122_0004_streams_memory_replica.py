"""streams: memory_replica table (the replicator's PostgreSQL replica of memory.writes)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "memory_replica",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("memory_key", sa.String(length=400), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("last_event_id", sa.String(length=64), nullable=False),
        sa.Column("last_occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "memory_key", name=op.f("pk_memory_replica")),
    )


def downgrade() -> None:
    op.drop_table("memory_replica")
