"""The relay's SQL: claim due rows fairly with FOR UPDATE SKIP LOCKED, then record what the broker said.

A claim runs in its own transaction and keeps its rows locked until the relay has the
broker's delivery reports and marks them, in that same transaction. A relay that dies
(even SIGKILL) aborts the transaction, so its rows are simply claimable again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from json import loads
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, TextClause, text
from sqlalchemy.exc import DBAPIError

from outbox.relay.policy import ClaimPlan, held_back, in_key_order
from soma.clients import database_engine
from soma.settings import Settings

# Tenants with due-or-retrying rows are found by a loose index scan of ix_outbox_events_due
# (one index probe per tenant, however many rows it holds), in round-robin order: those after
# the cursor first, then wrapping around, at most :max_tenants of them. Each tenant's rows come
# from the same index through LATERAL ... LIMIT share, locked as they are read (SKIP LOCKED:
# rows another relay claimed are passed over, never waited for). Rows are then ordered round
# by round (`quota` rows of every tenant per round) and cut at the batch size. A tenant's limit (an
# open circuit, its rate's tokens: `ClaimPlan`) caps its share; one capped below its quota takes no
# part in sizing the others' shares. The first two columns (tenants visited, last one visited)
# are there even when no row is claimed.
#
# Per-key order (tenant, topic, key), across retries and relays: a row is passed over while an
# older row of its key waits for a retry (`failed` with a later next_attempt_at: one probe of
# ix_outbox_events_key_failed), and while another relay's open claim holds the key: each claim
# takes a transaction-scoped advisory lock per key it claims (KEY_LOCK_CLASS, a hash of the key;
# re-entrant within the claim, released at its commit; a lock-table entry per distinct key in
# flight), and a key whose lock another claim holds is skipped like a locked row. A hash
# collision only makes two keys wait for each other. Passing over one row does not stop the scan
# at the next row of its key, though: a row locked by a transaction without the key lock (an
# operator's UPDATE) is skipped after its key lock was taken, so the key's next row is claimed; a
# key another claim released during this statement (its rows cut by the batch size or held back
# stay pending) is skipped for its older rows and claimed for its newer ones; a retried row's key
# has rows older than it and due before it. So `claim` then checks every claimed key with a fresh
# snapshot, holding its lock (KEY_BLOCKERS), and holds back rows an older unsent row would overtake.
CLAIM_SQL = """
WITH RECURSIVE tenants(tenant_id, wrapped, n) AS (
    SELECT s.t, s.wrapped, 1
      FROM (SELECT (SELECT e.tenant_id FROM outbox_events e
                     WHERE e.status IN ('pending', 'failed') AND e.tenant_id > :after
                     ORDER BY e.tenant_id, e.next_attempt_at, e.id LIMIT 1) AS t) a
     CROSS JOIN LATERAL (
        SELECT COALESCE(a.t, (SELECT e.tenant_id FROM outbox_events e
                               WHERE a.t IS NULL AND e.status IN ('pending', 'failed')
                               ORDER BY e.tenant_id, e.next_attempt_at, e.id LIMIT 1)) AS t,
               a.t IS NULL AS wrapped
     ) s
     WHERE s.t IS NOT NULL
    UNION ALL
    SELECT s.t, s.wrapped, t.n + 1
      FROM tenants t
     CROSS JOIN LATERAL (
        SELECT (SELECT e.tenant_id FROM outbox_events e
                 WHERE e.status IN ('pending', 'failed') AND e.tenant_id > t.tenant_id
                 ORDER BY e.tenant_id, e.next_attempt_at, e.id LIMIT 1) AS t
     ) nx
     CROSS JOIN LATERAL (
        SELECT COALESCE(nx.t, (SELECT e.tenant_id FROM outbox_events e
                                WHERE nx.t IS NULL AND NOT t.wrapped AND e.status IN ('pending', 'failed')
                                ORDER BY e.tenant_id, e.next_attempt_at, e.id LIMIT 1)) AS t,
               t.wrapped OR nx.t IS NULL AS wrapped
     ) s
     WHERE t.n < :max_tenants AND s.t IS NOT NULL AND NOT (s.wrapped AND s.t > :after)
),
overrides(tenant_id, quota, lim) AS (
    SELECT * FROM unnest(CAST(:tenants AS text[]), CAST(:quotas AS int[]), CAST(:limits AS int[]))
),
plan AS (
    SELECT t.tenant_id, t.n, COALESCE(o.quota, :quota) AS quota, COALESCE(o.lim, :default_limit) AS lim
      FROM tenants t LEFT JOIN overrides o ON o.tenant_id = t.tenant_id
),
sized AS (
    SELECT p.tenant_id, p.n, p.quota,
           CASE WHEN p.lim >= 0 AND p.lim < p.quota THEN p.lim
                ELSE LEAST(NULLIF(p.lim, -1), p.quota * GREATEST(1, CEIL(CAST(:batch_size AS numeric)
                     / NULLIF(SUM(CASE WHEN p.lim < 0 OR p.lim >= p.quota THEN p.quota END) OVER (), 0)))::int)
           END AS share
      FROM plan p
),
claimed AS (
    SELECT c.*, z.n, z.quota,
           row_number() OVER (PARTITION BY c.tenant_id ORDER BY c.next_attempt_at, c.id) AS rn
      FROM sized z
     CROSS JOIN LATERAL (
        SELECT e.id, e.tenant_id, e.topic, e.key, e.headers, e.payload, e.attempts,
               e.created_at, e.next_attempt_at
          FROM outbox_events e
         WHERE e.tenant_id = z.tenant_id
           AND e.status IN ('pending', 'failed')
           AND e.next_attempt_at <= now()
           AND NOT EXISTS (
                SELECT 1 FROM outbox_events o
                 WHERE o.status = 'failed' AND o.tenant_id = e.tenant_id AND o.topic = e.topic
                   AND o.key = e.key AND o.id < e.id AND o.next_attempt_at > e.next_attempt_at)
           AND pg_try_advisory_xact_lock(:key_lock, hashtext(e.tenant_id || chr(31) || e.topic || chr(31) || e.key))
         ORDER BY e.next_attempt_at, e.id
         LIMIT z.share
         FOR UPDATE OF e SKIP LOCKED
     ) c
),
visit AS (
    SELECT count(*) AS visited, (array_agg(tenant_id ORDER BY n DESC))[1] AS last_tenant FROM tenants
)
SELECT v.visited, v.last_tenant, b.id, b.tenant_id, b.topic, b.key, CAST(b.headers AS text), b.payload, b.attempts,
       b.created_epoch
  FROM visit v
  LEFT JOIN LATERAL (
    SELECT id, tenant_id, topic, key, headers, payload, attempts,
           EXTRACT(EPOCH FROM created_at)::float8 AS created_epoch,
           (rn - 1) / quota AS round, n, rn
      FROM claimed
     ORDER BY (rn - 1) / quota, n, rn
     LIMIT :batch_size
  ) b ON true
 ORDER BY b.round, b.n, b.rn
"""
CLAIM = text(CLAIM_SQL)
# The same statement for the driver (psycopg placeholders; `::` casts are left alone), run with
# binary results: a 1 KB payload comes as its bytes, not as 2 KB of hex both sides must convert.
CLAIM_DRIVER = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", CLAIM_SQL)
KEY_LOCK_CLASS = 1399811426  # advisory lock class of the per-key claim locks ("Soma" + 1; the wake-up uses + 0)

# Run after the claim, in its transaction, with a fresh snapshot (READ COMMITTED) while the claim
# holds its keys' locks: for each claimed key, its oldest unsent row older than the claim's newest
# row of that key that the claim does not hold. Such a row is locked elsewhere, was released unsent
# by another claim, or waits for a retry (failed, maybe after this claim's snapshot); the claim's
# rows of that key after it are held back (`policy.held_back`). No other claim can take the key's
# rows meanwhile (this claim holds the key lock), so the row found stays the key's oldest until
# this claim commits. Failed rows are looked up at any age (ix_outbox_events_key_failed, as the
# claim's filter does), if there are any (one probe of that small index first). Pending rows only
# from the tenant's due front on (its first unsent row in due order, where the claim's scan began:
# a row the scan passed over comes after it): a key's sent rows leave dead entries in
# ix_outbox_events_key_unsent until vacuum, and from the front on there are only those of the rows
# in flight. There, one probe per key counts the key's unsent rows below its newest claimed one;
# only a key with more of them than the claim holds is searched for the row (OFFSET 0: the outer
# filter does not repeat the probes). The claimed ids come as one comma-separated string (see
# MARK_SENT). Two overlapping writer transactions can leave a key's older row due after the
# front's newer ones; such a row has no defined order and is not looked for.
KEY_BLOCKERS = text(
    """
WITH c AS (
    SELECT e.id, e.tenant_id, e.topic, e.key FROM outbox_events e
     WHERE e.id = ANY(CAST(string_to_array(:ids, ',') AS bigint[]))
),
fronts AS MATERIALIZED (
    SELECT t.tenant_id,
           (SELECT o.id FROM outbox_events o WHERE o.status IN ('pending', 'failed') AND o.tenant_id = t.tenant_id
             ORDER BY o.next_attempt_at, o.id LIMIT 1) AS front
      FROM (SELECT DISTINCT tenant_id FROM c) t
),
k AS (
    SELECT c.tenant_id, c.topic, c.key, max(c.id) AS last, array_agg(c.id) AS ids, min(f.front) AS front,
           count(*) FILTER (WHERE c.id >= f.front) AS held_from_front
      FROM c JOIN fronts f ON f.tenant_id = c.tenant_id
     GROUP BY c.tenant_id, c.topic, c.key
)
SELECT tenant_id, topic, key, blocker FROM (
    SELECT k.tenant_id, k.topic, k.key, LEAST(
           CASE WHEN (SELECT EXISTS (SELECT 1 FROM outbox_events WHERE status = 'failed')) THEN
           (SELECT o.id FROM outbox_events o
             WHERE o.status = 'failed'
               AND (o.tenant_id, o.topic, o.key, o.id) >= (k.tenant_id, k.topic, k.key, 0)
               AND (o.tenant_id, o.topic, o.key, o.id) < (k.tenant_id, k.topic, k.key, k.last)
               AND o.id <> ALL(k.ids)
             ORDER BY o.tenant_id, o.topic, o.key, o.id LIMIT 1) END,
           CASE WHEN (SELECT count(*) FROM outbox_events o
                       WHERE o.status IN ('pending', 'failed') AND o.tenant_id = k.tenant_id AND o.topic = k.topic
                         AND o.key = k.key AND o.id >= k.front AND o.id < k.last) >= k.held_from_front
                THEN (SELECT min(o.id) FROM outbox_events o
                       WHERE o.status IN ('pending', 'failed') AND o.tenant_id = k.tenant_id AND o.topic = k.topic
                         AND o.key = k.key AND o.id >= k.front AND o.id < k.last AND o.id <> ALL(k.ids))
           END) AS blocker
      FROM k
    OFFSET 0
) b
 WHERE blocker IS NOT NULL
"""
)
EXPLAIN_CLAIM = text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)" + CLAIM_SQL)

# One UPDATE for the batch. Each column comes as one comma-separated string that PostgreSQL splits:
# dumping four 1,000-element Python lists as arrays cost the relay more CPU than the statement.
MARK_SENT = text(
    """
UPDATE outbox_events AS e
   SET status = 'sent', attempts = e.attempts + 1, last_error = NULL,
       sent_at = to_timestamp(v.acked_at), "partition" = v.part, "offset" = v.off
  FROM unnest(CAST(string_to_array(:ids, ',') AS bigint[]), CAST(string_to_array(:partitions, ',') AS int[]),
              CAST(string_to_array(:offsets, ',') AS bigint[]), CAST(string_to_array(:acked_at, ',') AS float8[]))
       AS v(id, part, off, acked_at)
 WHERE e.id = v.id
"""
)

MARK_FAILED = text(
    """
UPDATE outbox_events AS e
   SET status = v.status, attempts = e.attempts + CASE WHEN v.counted THEN 1 ELSE 0 END, last_error = v.error,
       next_attempt_at = clock_timestamp() + make_interval(secs => v.delay_s)
  FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:errors AS text[]),
              CAST(:delays AS float8[]), CAST(:counted AS boolean[])) AS v(id, status, error, delay_s, counted)
 WHERE e.id = v.id
"""
)

# Anything due now, claimed by a relay or not: `--drain` stops when this is false (so it waits for
# other relays' open claims). It takes no lock: a row lock here would make a claim skip that row
# after taking its key's lock, and hold the key's newer rows back (KEY_BLOCKERS).
ANY_DUE = text(
    """
SELECT EXISTS (
    SELECT 1 FROM outbox_events e
     WHERE e.status IN ('pending', 'failed') AND e.next_attempt_at <= now()
)
"""
)

# The gauges, per tenant: rows not yet published (pending or waiting for a retry), the oldest's
# age, and rows parked as dead (served by the (status, tenant_id, created_at) index).
PENDING_BY_TENANT = text(
    """
SELECT tenant_id, count(*) FILTER (WHERE status <> 'dead') AS pending,
       COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at) FILTER (WHERE status <> 'dead')), 0)::float8,
       count(*) FILTER (WHERE status = 'dead') AS dead
  FROM outbox_events
 WHERE status IN ('pending', 'failed', 'dead')
 GROUP BY tenant_id
"""
)


@dataclass(frozen=True, slots=True)
class TenantBacklog:
    tenant: str
    pending: int
    oldest_age_s: float
    dead: int


def relay_engine(settings: Settings, pool_size: int) -> Engine:
    """The relay's engine.

    JIT off: the claim's cost estimate would trigger ~200 ms of compiling per claim.
    synchronous_commit off: the relay's transactions only record delivery reports; one lost in
    a PostgreSQL crash means that row is published again (at least once, as after a relay
    crash), and commits no longer wait for a WAL flush each (tiny batches at low rates made
    the flushes, one after the other, the relay's bottleneck and its latency tail).
    """
    options = settings.sqlalchemy_engine_options()
    connect_args = dict(options.get("connect_args", {}))
    connect_args["options"] = (str(connect_args.get("options", "")) + " -cjit=off -csynchronous_commit=off").strip()
    return database_engine(settings, connect_args=connect_args, pool_size=pool_size, max_overflow=2)


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    id: int
    tenant_id: str
    topic: str
    key: str
    headers: dict[str, str]
    payload: bytes
    attempts: int
    created_epoch: float


@dataclass(frozen=True)
class Claim:
    rows: list[ClaimedRow]
    visited: int  # tenants with due rows the claim looked at
    last_visited: str | None
    held: frozenset[int] = frozenset()  # ids not to produce: an older row of their key is not in the claim


def _params(plan: ClaimPlan) -> dict[str, Any]:
    return {
        "after": plan.after, "tenants": list(plan.tenants), "quotas": list(plan.quotas),
        "limits": list(plan.limits), "quota": plan.quota, "max_tenants": plan.max_tenants,
        "batch_size": plan.batch_size, "key_lock": KEY_LOCK_CLASS, "default_limit": plan.default_limit,
    }


def _claimed_rows(conn: Connection, plan: ClaimPlan) -> list[Any]:
    """The claim's result rows, on the driver connection of `conn` (its transaction): a prepared
    statement with binary results. Driver errors are raised as SQLAlchemy's, like every other
    statement of the relay."""
    raw: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
    try:
        with raw.cursor(binary=True) as cursor:
            cursor.execute(CLAIM_DRIVER, _params(plan), prepare=True)
            return cursor.fetchall()
    except psycopg.Error as exc:
        raise DBAPIError.instance(CLAIM_SQL, None, exc, psycopg.Error) from exc


def claim(conn: Connection, plan: ClaimPlan) -> Claim:
    """Lock and return up to `plan.batch_size` due rows, fairly across tenants (caller's transaction).

    Headers come as text and are parsed here: about 3x cheaper than the driver's jsonb loader.
    A key's rows are returned in id order (rows of overlapping writer transactions may be due in
    the other order), with those an older unsent row of their key would overtake in `held`.
    """
    result = _claimed_rows(conn, plan)
    visited, last_visited = (int(result[0][0]), result[0][1]) if result else (0, None)
    rows = [
        ClaimedRow(r[2], r[3], r[4], r[5], loads(r[6]) if r[6] else {}, bytes(r[7]), r[8], r[9])
        for r in result if r[2] is not None
    ]
    if not rows:
        return Claim(rows, visited, last_visited)
    found = conn.execute(KEY_BLOCKERS, {"ids": ",".join([str(r.id) for r in rows])}).all()
    blockers = {(str(t), str(topic), str(key)): int(b) for t, topic, key, b in found}
    return Claim(in_key_order(rows), visited, last_visited, held_back(rows, blockers))


def _update(conn: Connection, statement: TextClause, **columns: Sequence[Any]) -> None:
    """One UPDATE for a whole batch: each column's values as a PostgreSQL array (nothing when no ids)."""
    if columns["ids"]:
        conn.execute(statement, {name: list(values) for name, values in columns.items()})


def mark_sent(
    conn: Connection, ids: Sequence[int], partitions: Sequence[int], offsets: Sequence[int], acked_at: Sequence[float]
) -> None:
    if ids:  # repr: a float's shortest exact text, so PostgreSQL reads back the same acknowledgement time
        conn.execute(MARK_SENT, {"ids": ",".join(map(str, ids)), "partitions": ",".join(map(str, partitions)),
                                 "offsets": ",".join(map(str, offsets)), "acked_at": ",".join(map(repr, acked_at))})


def mark_failed(
    conn: Connection, ids: Sequence[int], statuses: Sequence[str], errors: Sequence[str], delays: Sequence[float],
    counted: Sequence[bool],
) -> None:
    """Failed rows: `counted` says whether the failure used up one of the row's attempts."""
    _update(conn, MARK_FAILED, ids=ids, statuses=statuses, errors=errors, delays=delays, counted=counted)


def any_due(conn: Connection) -> bool:
    return bool(conn.execute(ANY_DUE).scalar())


def pending_by_tenant(conn: Connection) -> list[TenantBacklog]:
    return [TenantBacklog(r[0], int(r[1]), float(r[2] or 0.0), int(r[3])) for r in conn.execute(PENDING_BY_TENANT)]


def explain_claim(conn: Connection, plan: ClaimPlan) -> str:
    """EXPLAIN ANALYZE of the claim with these parameters (it locks rows: roll back afterwards)."""
    return "\n".join(str(row[0]) for row in conn.execute(EXPLAIN_CLAIM, _params(plan)))
