"""outbox: index of unsent rows by (tenant, topic, key, id), for the claim's per-key check

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 13:00:00

After each claim the relay looks, for every claimed key, for an older unsent row (pending or
failed) the claim does not hold (outbox.relay.claim.KEY_BLOCKERS): one probe of this index per
key. Partial (unsent rows only): a row gets its entry when written and none when marked sent, so
the index is the size of the backlog. ix_outbox_events_key_failed stays: the claim's filter asks
for older failed rows only, and a probe here would walk a key's whole pending backlog per row.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_events_key_unsent",
        "outbox_events",
        ["tenant_id", "topic", "key", "id"],
        postgresql_where=sa.text("status IN ('pending', 'failed')"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_events_key_unsent", table_name="outbox_events")
