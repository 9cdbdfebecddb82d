"""Retention: delete sent outbox rows (and, if configured, dead ones) once they are old enough.

A prune walks the primary key from the start in windows of `batch` rows; each window is one
short transaction that deletes the window's sent rows acknowledged before the cutoff (and dead
rows parked before the dead-rows cutoff) and nothing else: pending and failed rows are never
touched, so neither the relay's claims nor its per-key order (which looks at `failed` rows
only: ix_outbox_events_key_failed, claim.KEY_BLOCKERS) can notice. Rows another transaction
holds are skipped (FOR UPDATE SKIP LOCKED), never waited for. The walk stops at the first
window whose rows are all younger than the cutoffs (a row is sent, or parked dead, after it is
created; ids follow creation order), when the time budget is spent, or when asked to stop.

No index serves the walk but the primary key: an index on sent_at would cost every mark-sent
UPDATE one more index insert (docs/performance.md, "Outbox retention").

Once a sent row is gone, its (tenant, dedupe key) may be written again: the writer's duplicate
detection holds for the retention after a row was sent (the dedupe window), and replay reaches
rows inside it only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

# One window: the next `batch` ids after `after`, and of those the rows old enough, deleted.
_WINDOW = """
WITH win AS (
    SELECT id, created_at FROM outbox_events WHERE id > :after ORDER BY id LIMIT :batch
),
doomed AS (
    SELECT e.id, e.status FROM outbox_events e
     WHERE e.id > :after AND e.id <= (SELECT max(id) FROM win)
       AND ((e.status = 'sent' AND e.sent_at < :cutoff) OR (e.status = 'dead' AND e.next_attempt_at < :dead_cutoff))
       {lock}
),
{action}
SELECT (SELECT max(id) FROM win), (SELECT min(created_at) FROM win),
       (SELECT count(*) FROM gone WHERE status = 'sent'), (SELECT count(*) FROM gone WHERE status = 'dead')
"""
DELETE_WINDOW = text(_WINDOW.format(
    lock="FOR UPDATE SKIP LOCKED",
    action="gone AS (DELETE FROM outbox_events e USING doomed d WHERE e.id = d.id RETURNING e.status)",
))
COUNT_WINDOW = text(_WINDOW.format(lock="", action="gone AS (SELECT status FROM doomed)"))
# Dead rows are parked with next_attempt_at = the moment they died (no retry follows).
_OUT_OF_TIME = {"57014", "55P03"}  # statement_timeout (the budget), lock_timeout
PRUNE_LOCK_CLASS = 1399811427  # advisory lock class of "one relay prunes at a time" ("Soma" + 2)


@dataclass(frozen=True, slots=True)
class PruneRequest:
    """What to prune: sent rows older than `sent_s`, dead rows older than `dead_s` (None: keep)."""

    sent_s: float | None
    dead_s: float | None
    batch: int = 1000
    budget_s: float = 10.0
    pause: float = 1.0  # after each window, wait this multiple of its duration (0: none)


@dataclass
class PruneResult:
    sent: int = 0  # sent rows deleted (or that would be, on a dry run)
    dead: int = 0
    windows: int = 0
    complete: bool = False  # the walk reached rows younger than the cutoffs (False: budget or stop)
    elapsed_s: float = 0.0
    dry_run: bool = False
    skipped: bool = False  # another prune held the lock (`exclusive`)


def cutoffs(now: datetime, request: PruneRequest) -> tuple[datetime | None, datetime | None]:
    """The sent and dead cutoffs at `now` (None: that status is not pruned)."""
    sent = now - timedelta(seconds=request.sent_s) if request.sent_s is not None else None
    dead = now - timedelta(seconds=request.dead_s) if request.dead_s is not None else None
    return sent, dead


def horizon(sent: datetime | None, dead: datetime | None) -> datetime | None:
    """Rows created at or after this cannot be pruned yet (None: nothing is pruned)."""
    present = [moment for moment in (sent, dead) if moment is not None]
    return max(present) if present else None


def prune(
    engine: Engine,
    request: PruneRequest,
    *,
    dry_run: bool = False,
    exclusive: bool = False,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], object] = time.sleep,
) -> PruneResult:
    """Walk the table once (within `request.budget_s`); `exclusive`: give up if another prune runs."""
    started = time.monotonic()
    result = PruneResult(dry_run=dry_run)
    with engine.connect() as conn:
        if exclusive and not conn.execute(text("SELECT pg_try_advisory_lock(:c, 0)"), {"c": PRUNE_LOCK_CLASS}).scalar():
            conn.rollback()
            result.skipped = True
            return result
        try:
            _walk(conn, request, result, dry_run, started, stop, sleep)
        finally:
            if exclusive:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:c, 0)"), {"c": PRUNE_LOCK_CLASS})
                conn.commit()
    result.elapsed_s = time.monotonic() - started
    return result


def _walk(
    conn: Connection, request: PruneRequest, result: PruneResult, dry_run: bool, started: float,
    stop: Callable[[], bool], sleep: Callable[[float], object],
) -> None:
    now = conn.execute(text("SELECT now()")).scalar_one()
    conn.commit()
    sent_cut, dead_cut = cutoffs(now, request)
    limit = horizon(sent_cut, dead_cut)
    if limit is None:
        result.complete = True
        return
    statement = COUNT_WINDOW if dry_run else DELETE_WINDOW
    deadline = started + request.budget_s
    after = 0
    while not stop():
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            return
        began = time.monotonic()
        try:
            with conn.begin():
                # Never queue behind a schema change, never outlive the budget.
                conn.execute(text(f"SET LOCAL lock_timeout = {min(left_ms, 2000)}"))
                conn.execute(text(f"SET LOCAL statement_timeout = {max(left_ms, 100)}"))
                last, oldest, sent, dead = conn.execute(statement, {
                    "after": after, "batch": request.batch, "cutoff": sent_cut, "dead_cutoff": dead_cut,
                }).one()
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) in _OUT_OF_TIME:  # that window rolled back; next run
                return
            raise
        result.windows += 1
        result.sent += int(sent)
        result.dead += int(dead)
        if last is None or oldest >= limit:
            result.complete = True
            return
        after = int(last)
        if request.pause > 0:
            sleep(min((time.monotonic() - began) * request.pause, max(0.0, deadline - time.monotonic())))


# Unsent rows are counted (their partial index is as small as the backlog); sent rows, the bulk,
# are the planner's estimate (pg_class.reltuples, kept by autovacuum/ANALYZE): counting them
# would read the whole table every refresh.
TABLE_STATS = text(
    """
SELECT pg_total_relation_size(c.oid), c.reltuples::float8,
       (SELECT count(*) FROM outbox_events WHERE status = 'pending'),
       (SELECT count(*) FROM outbox_events WHERE status = 'failed'),
       (SELECT count(*) FROM outbox_events WHERE status = 'dead')
  FROM pg_class c
 WHERE c.oid = CAST('outbox_events' AS regclass)
"""
)
COUNT_SENT = text("SELECT count(*) FROM outbox_events WHERE status = 'sent'")


@dataclass(frozen=True, slots=True)
class TableStats:
    bytes: int  # table + indexes + TOAST
    rows: dict[str, int]  # by status; "sent" estimated once the table was analyzed


def table_stats(conn: Connection) -> TableStats:
    size, estimate, pending, failed, dead = conn.execute(TABLE_STATS).one()
    unsent = int(pending) + int(failed) + int(dead)
    # reltuples is -1 until the first VACUUM/ANALYZE: the table is young, so count.
    sent = max(int(estimate) - unsent, 0) if estimate >= 0 else int(conn.execute(COUNT_SENT).scalar_one())
    return TableStats(int(size), {"pending": int(pending), "failed": int(failed), "dead": int(dead), "sent": sent})
