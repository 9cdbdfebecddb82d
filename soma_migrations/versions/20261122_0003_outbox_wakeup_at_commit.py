"""outbox relay wake-up checked at commit, not at insert

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 13:00:00

0002 checked for an idle relay when the INSERT ran and then held the shared advisory lock for
the rest of the writer's transaction, so one long writer transaction kept the relay from going
idle (it fell back to polling, and that writer's rows waited for the poll). The check now runs
in a deferred constraint trigger, i.e. while the transaction commits: the shared lock is held
only for the commit itself. Once per transaction (a transaction-local flag), however many rows.

`outbox_relay_wait_idle(ms)` lets the relay *wait* (bounded) for the exclusive lock instead of
only trying it: a waiting exclusive request already makes new committing writers fail their
try-shared (so they NOTIFY), and the relay gets the lock as soon as the commits in progress end.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AT_COMMIT_FUNCTION = """
CREATE FUNCTION outbox_events_wake_relay() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('soma.outbox_wake_checked', true) IS DISTINCT FROM '1' THEN
        PERFORM set_config('soma.outbox_wake_checked', '1', true);
        IF NOT pg_try_advisory_xact_lock_shared(1399811425, hashtext(TG_TABLE_SCHEMA)) THEN
            PERFORM pg_notify('soma_outbox_' || to_hex(hashtext(TG_TABLE_SCHEMA)), '');
        END IF;
    END IF;
    RETURN NULL;
END
$$
"""

AT_COMMIT_TRIGGER = """
CREATE CONSTRAINT TRIGGER outbox_events_wake_relay AFTER INSERT ON outbox_events
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION outbox_events_wake_relay()
"""

AT_INSERT_FUNCTION = """
CREATE FUNCTION outbox_events_wake_relay() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(1399811425, hashtext(TG_TABLE_SCHEMA)) THEN
        PERFORM pg_notify('soma_outbox_' || to_hex(hashtext(TG_TABLE_SCHEMA)), '');
    END IF;
    RETURN NULL;
END
$$
"""

AT_INSERT_TRIGGER = """
CREATE TRIGGER outbox_events_wake_relay AFTER INSERT ON outbox_events
FOR EACH STATEMENT EXECUTE FUNCTION outbox_events_wake_relay()
"""


WAIT_IDLE_FUNCTION = """
CREATE FUNCTION outbox_relay_wait_idle(timeout_ms integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('lock_timeout', timeout_ms || 'ms', true);
    PERFORM pg_advisory_lock(1399811425, outbox_relay_key());
    RETURN true;
EXCEPTION WHEN lock_not_available THEN
    RETURN false;
END
$$
"""


def upgrade() -> None:
    op.execute("DROP TRIGGER outbox_events_wake_relay ON outbox_events")
    op.execute("DROP FUNCTION outbox_events_wake_relay()")
    op.execute(AT_COMMIT_FUNCTION)
    op.execute(AT_COMMIT_TRIGGER)
    op.execute(WAIT_IDLE_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION outbox_relay_wait_idle(integer)")
    op.execute("DROP TRIGGER outbox_events_wake_relay ON outbox_events")
    op.execute("DROP FUNCTION outbox_events_wake_relay()")
    op.execute(AT_INSERT_FUNCTION)
    op.execute(AT_INSERT_TRIGGER)
