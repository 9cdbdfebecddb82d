"""outbox: index of failed rows by (tenant, topic, key), for per-key order across retries and relays

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 07:00:00

The relay's claim passes over a row while an older row of the same (tenant, topic, key) waits
for its retry (status `failed`, a later `next_attempt_at`: ix_outbox_events_key_failed, a probe
into the usually tiny set of failed rows); after a claim, the same index finds a claimed key's
failed row the claim does not hold (outbox.relay.claim.KEY_BLOCKERS).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_events_key_failed",
        "outbox_events",
        ["tenant_id", "topic", "key", "id"],
        postgresql_where=sa.text("status = 'failed'"),
        postgresql_include=["next_attempt_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_events_key_failed", table_name="outbox_events")
