"""`outbox.retention.prune` and `soma outbox prune` against the real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from sqlalchemy import Engine, text

from outbox.admin.auth import Principal
from outbox.admin.replay import Replayer
from outbox.errors import RowsNotFound
from outbox.retention import PruneRequest, prune, table_stats
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.ops.processes import run_bounded
from soma.settings import Settings
from tests.support.outbox_relay import insert_rows, status_counts
from tests.support.procs import REPO

HOUR = 3600.0

# Age rows: `status`, sent (or parked dead) `age_s` ago, created a minute before that.
AGE = text(
    """
UPDATE outbox_events
   SET status = v.status, created_at = now() - v.age - interval '1 minute',
       sent_at = CASE WHEN v.status = 'sent' THEN now() - v.age END,
       next_attempt_at = now() - v.age, "partition" = 0, "offset" = id
  FROM (SELECT CAST(:status AS varchar) AS status, make_interval(secs => CAST(:age AS float8)) AS age) AS v
 WHERE dedupe_key LIKE :prefix || '%'
"""
)


def rows(engine: Engine, tenant: str, count: int, status: str, age_s: float) -> list[int]:
    prefix = insert_rows(engine, tenant, count, "t.retention")
    with engine.begin() as conn:
        conn.execute(AGE, {"status": status, "age": age_s, "prefix": prefix})
        return [int(i) for i in conn.scalars(text("SELECT id FROM outbox_events WHERE dedupe_key LIKE :p || '%'"),
                                             {"p": prefix})]


def remaining(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return {int(i) for i in conn.scalars(text("SELECT id FROM outbox_events"))}


def test_prune_deletes_only_sent_rows_older_than_the_cutoff(engine: Engine) -> None:
    # Interleaved by id: old sent rows before, between and after rows that must stay.
    old_sent = rows(engine, "acme", 25, "sent", 2 * HOUR)
    pending = rows(engine, "acme", 5, "pending", 3 * HOUR)
    failed = rows(engine, "globex", 5, "failed", 3 * HOUR)
    old_sent += rows(engine, "globex", 30, "sent", 2 * HOUR)
    dead = rows(engine, "acme", 4, "dead", 3 * HOUR)
    old_sent += rows(engine, "initech", 7, "sent", 5 * HOUR)
    young_sent = rows(engine, "acme", 10, "sent", 60.0)  # the walk ends at the first window of young rows
    new_pending = rows(engine, "acme", 3, "pending", 0.0)

    dry = prune(engine, PruneRequest(HOUR, None, batch=4), dry_run=True)
    assert (dry.sent, dry.dead, dry.complete, dry.dry_run) == (62, 0, True, True)
    assert len(remaining(engine)) == 89  # nothing deleted by a dry run

    result = prune(engine, PruneRequest(HOUR, None, batch=4, pause=0))
    assert (result.sent, result.dead, result.complete) == (62, 0, True)
    assert result.windows >= 62 // 4  # small windows: one short transaction each
    assert remaining(engine) == set(pending + failed + dead + young_sent + new_pending)
    assert not set(old_sent) & remaining(engine)

    # Dead rows only when asked, and only those parked before their cutoff.
    assert prune(engine, PruneRequest(None, 4 * HOUR)).dead == 0
    assert prune(engine, PruneRequest(None, 2 * HOUR)).dead == 4
    assert remaining(engine) == set(pending + failed + young_sent + new_pending)
    assert prune(engine, PruneRequest(None, None)).complete  # nothing to prune: a no-op


def test_prune_skips_locked_rows_and_never_waits(engine: Engine) -> None:
    ids = rows(engine, "acme", 10, "sent", 2 * HOUR)
    locked = min(ids)
    holder = engine.connect()
    try:
        holder.begin()
        holder.execute(text("SELECT 1 FROM outbox_events WHERE id = :id FOR UPDATE"), {"id": locked})
        result = prune(engine, PruneRequest(HOUR, None, budget_s=20))
        assert result.sent == 9
        assert result.elapsed_s < 10
        assert remaining(engine) == {locked}
    finally:
        holder.rollback()
        holder.close()
    assert prune(engine, PruneRequest(HOUR, None)).sent == 1


def test_a_prune_stops_at_its_budget_and_one_relay_prunes_at_a_time(engine: Engine) -> None:
    rows(engine, "acme", 300, "sent", 2 * HOUR)
    short = prune(engine, PruneRequest(HOUR, None, batch=1, budget_s=0.2))
    assert not short.complete
    assert 0 < short.sent < 300
    assert short.elapsed_s < 5

    started, release = threading.Event(), threading.Event()

    def stop() -> bool:  # holds the prune (and its lock) open until told
        started.set()
        return release.wait(30)

    first = threading.Thread(target=prune, args=(engine, PruneRequest(HOUR, None)),
                             kwargs={"exclusive": True, "stop": stop})
    first.start()
    try:
        assert started.wait(30)
        assert prune(engine, PruneRequest(HOUR, None), exclusive=True).skipped
    finally:
        release.set()
        first.join(30)
    assert prune(engine, PruneRequest(HOUR, None), exclusive=True).sent == 300 - short.sent


def test_table_stats_count_rows_by_status_and_bytes(engine: Engine) -> None:
    rows(engine, "acme", 6, "pending", 0.0)
    rows(engine, "acme", 2, "failed", 0.0)
    rows(engine, "acme", 1, "dead", 0.0)
    rows(engine, "acme", 40, "sent", 0.0)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE outbox_events"))
    with engine.connect() as conn:
        stats = table_stats(conn)
    assert {k: stats.rows[k] for k in ("pending", "failed", "dead")} == {"pending": 6, "failed": 2, "dead": 1}
    assert stats.rows["sent"] == 40  # just analyzed: the estimate is exact
    assert stats.bytes > 8192


def test_replaying_a_pruned_row_is_a_one_line_answer(outbox_db: Settings, engine: Engine) -> None:
    kept = rows(engine, "acme", 2, "sent", 60.0)
    gone = rows(engine, "acme", 2, "sent", 2 * HOUR)
    catalog = load_catalog()
    replayer = Replayer(engine, outbox_db, catalog, Codec(catalog, outbox_db))
    admin = Principal(actor="test", all_tenants=True)
    assert replayer.by_ids(admin, kept, tenant="acme", dry_run=True).count == 2  # inside retention
    prune(engine, PruneRequest(HOUR, None))
    with pytest.raises(RowsNotFound) as caught:
        replayer.by_ids(admin, [*kept, *gone], tenant="acme", dry_run=True)
    message = str(caught.value)
    assert message.startswith(f"ids: 2 unknown id(s): {min(gone)}, {max(gone)} (never written, or sent longer")
    assert "SOMA_OUTBOX_RETENTION" in message
    assert "\n" not in message


def soma(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_bounded([sys.executable, "-m", "soma", "outbox", "prune", *args], timeout_s=120,
                       env=settings.child_env(), cwd=REPO)


def test_prune_cli_prunes_and_reports(outbox_db: Settings, engine: Engine) -> None:
    rows(engine, "acme", 12, "sent", 2 * HOUR)
    rows(engine, "acme", 3, "pending", 3 * HOUR)
    dry = soma(outbox_db, "--older-than", "1h", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) | {"elapsed_s": 0, "windows": 0} == {
        "dry_run": True, "sent": 12, "dead": 0, "complete": True, "windows": 0, "elapsed_s": 0,
        "sent_older_than": "1h", "dead_older_than": "off"}
    assert status_counts(engine) == {"sent": 12, "pending": 3}
    # Without --older-than: SOMA_OUTBOX_RETENTION (here 3h: nothing is that old yet).
    kept = soma(outbox_db.replace(outbox_retention=3 * HOUR), "--batch", "5")
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.startswith("deleted 0 sent row(s) older than 3h and 0 dead row(s) older than off")
    done = soma(outbox_db, "--older-than", "90m", "--batch", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("deleted 12 sent row(s) older than 90m")
    assert status_counts(engine) == {"pending": 3}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--older-than", "abc"], "invalid --older-than: expected a duration such as 7d"),
        (["--older-than", "0"], "invalid --older-than: expected a duration such as 7d"),
        (["--older-than", "-5m"], "invalid --older-than: expected a duration such as 7d"),
        (["--dead-older-than", "7x"], "invalid --dead-older-than: expected a duration"),
        (["--older-than", "1h\udcff"], "invalid --older-than: expected a duration"),
        (["--batch", "-1"], "invalid --batch: expected a whole number from 1 to 50000, got '-1'"),
        (["--batch", "0"], "invalid --batch: expected a whole number from 1 to 50000"),
        (["--batch", "100000"], "invalid --batch: expected a whole number from 1 to 50000"),
        (["--batch", "ten"], "invalid --batch: expected a whole number"),
        (["--budget", "nan"], "invalid --budget: expected a number from 0.1 to 86400"),
        (["--budget", "-1"], "invalid --budget: expected a number from 0.1 to 86400"),
    ],
)
def test_prune_cli_hostile_input_is_one_line_and_deletes_nothing(
    outbox_db: Settings, engine: Engine, args: list[str], expected: str
) -> None:
    rows(engine, "acme", 3, "sent", 30 * 86400)
    result = soma(outbox_db, *args)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in lines[0]
    assert status_counts(engine) == {"sent": 3}


def test_a_bad_retention_setting_is_one_line_naming_it(outbox_db: Settings) -> None:
    env = outbox_db.child_env() | {"SOMA_OUTBOX_RETENTION": "forever"}
    result = run_bounded([sys.executable, "-m", "soma", "outbox", "prune", "--dry-run"], timeout_s=60, env=env,
                         cwd=REPO)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "soma: error: invalid setting SOMA_OUTBOX_RETENTION: expected a duration such as 7d, 12h, 1h30m, 90s or "
        "3600 (seconds), or off, got 'forever'"
    ]


def test_the_table_is_vacuumed_after_two_percent_dead_rows(engine: Engine) -> None:
    """Migration 0007: pruned rows' dead entries do not pile up in front of every walk."""
    with engine.connect() as conn:
        options = conn.scalar(text("SELECT reloptions FROM pg_class WHERE oid = CAST('outbox_events' AS regclass)"))
    assert "autovacuum_vacuum_scale_factor=0.02" in (options or [])
