"""outbox relay wake-up: coalesced NOTIFY, only while a relay is idle

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 12:00:00

An idle relay holds an exclusive session-level advisory lock (key: 1399811425 = "Soma",
hashtext(schema)) while it waits on LISTEN. Every INSERT into outbox_events tries to take the
same lock *shared* until its transaction ends: when that fails, a relay is idle and the
transaction notifies (delivered at commit); when it succeeds, no NOTIFY is sent, and the relay
cannot go idle before this transaction has ended (so it cannot miss the row). Writers therefore
NOTIFY only in the short window after a relay went idle, never on every commit.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAKE_FUNCTION = """
CREATE FUNCTION outbox_events_wake_relay() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(1399811425, hashtext(TG_TABLE_SCHEMA)) THEN
        PERFORM pg_notify('soma_outbox_' || to_hex(hashtext(TG_TABLE_SCHEMA)), '');
    END IF;
    RETURN NULL;
END
$$
"""

WAKE_TRIGGER = """
CREATE TRIGGER outbox_events_wake_relay AFTER INSERT ON outbox_events
FOR EACH STATEMENT EXECUTE FUNCTION outbox_events_wake_relay()
"""

# The relay's side, so the lock key and the channel are derived in one place: the schema is
# the one `outbox_events` resolves to through the caller's search_path (as for its queries).
KEY_FUNCTION = """
CREATE FUNCTION outbox_relay_key() RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT hashtext(n.nspname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = 'outbox_events'::regclass
$$
"""

LISTEN_FUNCTION = """
CREATE FUNCTION outbox_relay_listen() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    channel text := 'soma_outbox_' || to_hex(outbox_relay_key());
BEGIN
    EXECUTE format('LISTEN %I', channel);
    RETURN channel;
END
$$
"""

IDLE_FUNCTION = """
CREATE FUNCTION outbox_relay_try_idle() RETURNS boolean LANGUAGE sql AS $$
    SELECT pg_try_advisory_lock(1399811425, outbox_relay_key())
$$
"""

BUSY_FUNCTION = """
CREATE FUNCTION outbox_relay_busy() RETURNS boolean LANGUAGE sql AS $$
    SELECT pg_advisory_unlock(1399811425, outbox_relay_key())
$$
"""


def upgrade() -> None:
    for statement in (WAKE_FUNCTION, WAKE_TRIGGER, KEY_FUNCTION, LISTEN_FUNCTION, IDLE_FUNCTION, BUSY_FUNCTION):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION outbox_relay_busy()")
    op.execute("DROP FUNCTION outbox_relay_try_idle()")
    op.execute("DROP FUNCTION outbox_relay_listen()")
    op.execute("DROP FUNCTION outbox_relay_key()")
    op.execute("DROP TRIGGER outbox_events_wake_relay ON outbox_events")
    op.execute("DROP FUNCTION outbox_events_wake_relay()")
