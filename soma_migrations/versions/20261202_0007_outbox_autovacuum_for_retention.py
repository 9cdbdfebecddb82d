"""outbox: vacuum outbox_events after 2 % of its rows are dead (retention deletes sent rows steadily)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 13:00:00

The retention prune (outbox/retention.py) deletes sent rows all the time and walks the primary
key from its start on every run: each dead entry left there until a vacuum costs every later
walk (measured, bench/outbox_prune.py's environment: a walk over 200,000 pruned rows took
1.4 s the first time, 55-61 ms after that, 10-19 ms once vacuumed). PostgreSQL's default
(a vacuum after 20 % of the table is dead) would leave millions of dead entries in a large
outbox, and their space unusable for new rows; 2 % keeps both small. Each vacuum reads the
table's indexes whole, so not less.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbox_events SET (autovacuum_vacuum_scale_factor = 0.02)")


def downgrade() -> None:
    op.execute("ALTER TABLE outbox_events RESET (autovacuum_vacuum_scale_factor)")
