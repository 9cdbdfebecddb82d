"""outbox: the status index holds unsent rows only

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00

Marking a row sent is a non-HOT UPDATE: every index whose predicate holds for the new row
version gets an entry. (status, tenant_id, created_at) is read only for rows that are not sent
(the relay's pending and dead gauges, the claim's probe of failed rows, admin listings of
pending/failed/dead rows), so as a partial index it takes one index insert (of three) off every
sent row and stays as small as the backlog instead of growing with the table's history.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_outbox_events_status_tenant_id_created_at"
COLUMNS = ["status", "tenant_id", "created_at"]


def upgrade() -> None:
    op.drop_index(NAME, table_name="outbox_events")
    op.create_index(NAME, "outbox_events", COLUMNS,
                    postgresql_where=sa.text("status IN ('pending', 'failed', 'dead')"))


def downgrade() -> None:
    op.drop_index(NAME, table_name="outbox_events")
    op.create_index(NAME, "outbox_events", COLUMNS)
