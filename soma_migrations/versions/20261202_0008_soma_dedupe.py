"""soma: the dedupe store's table (event ids a consumer scope has handled)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 13:00:00

One row per (scope, event id), inserted in the handler's own transaction (soma/dedupe/postgres.py);
`seen_at` is indexed for the TTL prune. Chained after 0006 on its branch; re-chained after 0007 at
the merge.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "soma_dedupe",
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("scope", "event_id", name="pk_soma_dedupe"),
    )
    op.create_index("ix_soma_dedupe_seen_at", "soma_dedupe", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_soma_dedupe_seen_at", table_name="soma_dedupe")
    op.drop_table("soma_dedupe")
