"""Per-key order survives a retry and two relays: a key's records reach the topic in the order written."""

from __future__ import annotations

import signal
from collections import defaultdict
from pathlib import Path

from sqlalchemy import Engine, text

from soma.settings import Settings
from tests.support.outbox_relay import (
    consume_all,
    create_topic,
    insert_rows,
    relay_process,
    relay_settings,
    status_counts,
)
from tests.support.procs import wait_for

KEYS = [f"ord:k{n}" for n in range(6)]
ROUNDS = 15
BIG = b"\xc3\x01" + b"x" * 1_100_000


def _first_row(engine: Engine, prefix: str) -> tuple[str, int, str | None]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, attempts, last_error FROM outbox_events WHERE dedupe_key = :k"),
                           {"k": f"{prefix}1"}).one()
    return str(row[0]), int(row[1]), row[2]


def test_a_row_that_fails_once_is_not_overtaken_by_newer_rows_of_its_key_with_two_relays(
    outbox_db: Settings, engine: Engine, tmp_path: Path
) -> None:
    topic = create_topic(outbox_db, partitions=3)
    # Round 0 of KEYS[2] is too large: it fails (an attempt), is fixed while it waits, then goes out.
    for round_no in range(ROUNDS):
        for key in KEYS:
            big = round_no == 0 and key == KEYS[2]
            insert_rows(engine, "ord", 1, topic, key=key, prefix=f"{key}|{round_no:02d}|",
                        **({"payload": BIG} if big else {}))
    insert_rows(engine, "other", 50, topic)  # another tenant, flowing meanwhile
    config = relay_settings(
        outbox_db, outbox_relay_batch_size=8, outbox_relay_tenant_quota=4, outbox_relay_retry_base_s=3,
        outbox_relay_retry_max_s=3, outbox_relay_max_attempts=5, outbox_relay_idle_timeout_s=0.3,
        outbox_relay_poll_max_s=0.05,
    )
    with relay_process(config, tmp_path / "relay-1.log") as first, \
            relay_process(config, tmp_path / "relay-2.log") as second:
        big_prefix = f"{KEYS[2]}|00|"
        wait_for(lambda: _first_row(engine, big_prefix)[0] == "failed", 60, interval_s=0.05,
                 what="the big row failed once")
        _, attempts, error = _first_row(engine, big_prefix)
        assert attempts == 1
        assert error is not None
        assert "MSG_SIZE_TOO_LARGE" in error
        with engine.begin() as conn:  # fixed while it waits for its retry
            conn.execute(text("UPDATE outbox_events SET payload = :p WHERE dedupe_key = :k"),
                         {"p": b"\xc3\x01small", "k": f"{big_prefix}1"})
        with engine.connect() as conn:  # meanwhile no newer row of its key went out
            newer_sent = conn.execute(text(
                "SELECT count(*) FROM outbox_events WHERE key = :key AND status = 'sent'"), {"key": KEYS[2]}).scalar()
        assert newer_sent == 0
        total = ROUNDS * len(KEYS) + 50
        wait_for(lambda: status_counts(engine) == {"sent": total}, 90, what=f"all {total} rows sent")
        for proc in (first, second):
            proc.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        assert second.wait(30) == 0
    by_key: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for record in consume_all(outbox_db, topic):
        if record.headers["tenant"] == "ord":
            key, round_no, _ = record.headers["dedupe-key"].split("|")
            by_key[key].append((record.partition, record.offset, int(round_no)))
    assert set(by_key) == set(KEYS)
    for key, records in by_key.items():
        assert len({p for p, _, _ in records}) == 1  # one key, one partition
        rounds = [r for _, _, r in sorted(records)]
        assert rounds == list(range(ROUNDS)), f"{key}: published in the order {rounds}"
