"""Per-key order at the claim, deterministically: a claim never hands out a row of a key while an
older unsent row of that key is out of its reach (row-locked elsewhere, waiting for a retry).

In-process claims on the real PostgreSQL; the interleavings are set up with open transactions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from outbox.relay.claim import Claim, any_due, claim
from outbox.relay.policy import FairShare
from soma.settings import Settings
from tests.support.outbox_relay import create_topic, insert_rows, relay_process, relay_settings, status_counts

KEY = "ord:k"

# `count` rows over 10 tenants and 200 keys, interleaved as many writers would leave them.
INSERT_MANY = text(
    """
INSERT INTO outbox_events (tenant_id, dedupe_key, topic, key, headers, payload, event_type, event_id)
SELECT 'ord' || (g % 10), 'many-' || g, CAST(:topic AS text), 'k' || (g % 200),
       jsonb_build_object('tenant', 'ord' || (g % 10), 'dedupe-key', 'many-' || g),
       CAST('\\xc30178' AS bytea), 'soma.events.ChatMessage', md5(g::text)
  FROM generate_series(1, :count) AS g
"""
)
# Rows whose record landed before the record of an older row of their key (one key, one partition).
OUT_OF_ORDER = text(
    """
SELECT count(*) FROM (
    SELECT "offset", lag("offset") OVER (PARTITION BY tenant_id, topic, key ORDER BY id) AS previous
      FROM outbox_events WHERE status = 'sent'
) s
 WHERE previous > "offset"
"""
)


@pytest.fixture(scope="module")
def topic(outbox_db: Settings) -> str:
    return create_topic(outbox_db)


@pytest.fixture
def conns(engine: Engine) -> Iterator[tuple[Connection, Connection]]:
    """Two connections, each in a transaction of its own, rolled back at the end."""
    with engine.connect() as first, engine.connect() as second:
        first.begin()
        second.begin()
        try:
            yield first, second
        finally:
            first.rollback()
            second.rollback()


def _ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM outbox_events WHERE key = :k ORDER BY id"), {"k": KEY}).scalars()
        return [int(i) for i in ids]


def _claim(conn: Connection) -> Claim:
    return claim(conn, FairShare(batch_size=50, quota=50, quotas={}).plan({}))


def _produced(claimed: Claim) -> list[int]:
    """Ids of KEY's rows the relay would produce from this claim, in the order it would produce them."""
    return [row.id for row in claimed.rows if row.key == KEY and row.id not in claimed.held]


def test_a_row_locked_by_another_transaction_is_not_overtaken_by_the_newer_rows_of_its_key(
    outbox_db: Settings, engine: Engine, topic: str, conns: tuple[Connection, Connection]
) -> None:
    insert_rows(engine, "ord", 4, topic, key=KEY)
    insert_rows(engine, "ord", 3, topic, key="ord:other")
    r0, *_ = _ids(engine)
    locker, relay = conns
    # e.g. an operator's UPDATE in progress: a row lock without the claims' key lock
    locker.execute(text("SELECT id FROM outbox_events WHERE id = :id FOR UPDATE"), {"id": r0})
    claimed = _claim(relay)
    assert _produced(claimed) == []
    assert sum(1 for row in claimed.rows if row.key == "ord:other" and row.id not in claimed.held) == 3
    relay.rollback()
    locker.rollback()  # the lock is gone: the key goes out whole, in order
    relay.begin()
    assert _produced(_claim(relay)) == _ids(engine)


def test_the_drain_check_takes_no_row_lock_a_claim_would_skip(
    outbox_db: Settings, engine: Engine, topic: str, conns: tuple[Connection, Connection]
) -> None:
    insert_rows(engine, "ord", 3, topic, key=KEY)
    drainer, relay = conns
    assert any_due(drainer)  # its transaction stays open while the claim runs
    assert _produced(_claim(relay)) == _ids(engine)


def test_a_retried_row_does_not_let_a_newer_row_pass_the_rows_between(
    outbox_db: Settings, engine: Engine, topic: str, conns: tuple[Connection, Connection]
) -> None:
    insert_rows(engine, "ord", 3, topic, key=KEY)
    r0, r1, r2 = _ids(engine)
    with engine.begin() as conn:  # r0 failed and is due again; r1 was due before it, r2 (written later) after
        conn.execute(text("UPDATE outbox_events SET status = 'failed', attempts = 1, "
                          "next_attempt_at = now() - interval '5 s' WHERE id = :id"), {"id": r0})
        conn.execute(text("UPDATE outbox_events SET next_attempt_at = now() - interval '10 s' WHERE id = :id"),
                     {"id": r1})
        conn.execute(text("UPDATE outbox_events SET next_attempt_at = now() - interval '1 s' WHERE id = :id"),
                     {"id": r2})
    _, relay = conns
    assert _produced(_claim(relay)) == [r0]  # r1 waited for r0; r2 waits for r1
    relay.commit()  # as the relay would after publishing r0
    with engine.begin() as conn:
        conn.execute(text("UPDATE outbox_events SET status = 'sent' WHERE id = :id"), {"id": r0})
    relay.begin()
    assert _produced(_claim(relay)) == [r1, r2]


def test_rows_of_a_key_written_by_overlapping_transactions_go_out_in_the_order_of_their_ids(
    outbox_db: Settings, engine: Engine, topic: str, conns: tuple[Connection, Connection]
) -> None:
    early, _ = conns
    early.execute(text("SELECT 1"))  # its transaction (and its now(), the rows' next_attempt_at) starts here
    insert_rows(engine, "ord", 1, topic, key=KEY)  # a later transaction writes first...
    early.execute(text(
        "INSERT INTO outbox_events (tenant_id, dedupe_key, topic, key, payload, event_type, event_id) "
        "VALUES ('ord', 'early-1', :topic, :key, '\\xc30178'::bytea, 'soma.events.ChatMessage', 'early-1')"),
        {"topic": topic, "key": KEY})
    early.commit()  # ...the earlier one second: its row has the larger id but the earlier next_attempt_at
    with engine.connect() as relay, relay.begin():
        assert _produced(_claim(relay)) == _ids(engine)


def test_a_drain_with_pipelined_claims_publishes_every_key_in_order(
    outbox_db: Settings, engine: Engine, topic: str, tmp_path: Path
) -> None:
    """The relay's own claims overlap (pipeline depth 4): one that passed over a key's older rows while
    the previous claim held the key, and reached its newer rows after that claim's commit, sent them
    first (main: ~3 % of the rows of such a drain)."""
    with engine.begin() as conn:
        conn.execute(INSERT_MANY, {"topic": topic, "count": 20_000})
    with relay_process(relay_settings(outbox_db), tmp_path / "relay.log", "--drain", "--no-metrics") as proc:
        assert proc.wait(180) == 0
    assert status_counts(engine) == {"sent": 20_000}
    with engine.connect() as conn:
        assert conn.execute(OUT_OF_ORDER).scalar() == 0
