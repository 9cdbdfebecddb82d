"""The relay's SQL: claim due rows fairly with FOR UPDATE SKIP LOCKED, then record what the broker said.

A claim runs in its own transaction and keeps its rows locked until the relay has the
broker's delivery reports and marks them, in that same transaction. A relay that dies
(even SIGKILL) aborts the transaction, so its rows are simply claimable again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from outbox.policy import ClaimPlan

# Tenants with due-or-retrying rows, found by a loose index scan of ix_outbox_events_due
# (one index probe per tenant, however many rows each holds), starting after the cursor.
# Each tenant's rows come from the same index through LATERAL ... LIMIT share, locking as
# they are read (SKIP LOCKED: another relay's claims are passed over, never waited for).
# Rows are then ordered round by round (`quota` rows of every tenant per round) and cut
# at the batch size.
CLAIM_SQL = """
WITH RECURSIVE tenants(tenant_id) AS (
    (SELECT e.tenant_id FROM outbox_events e
      WHERE e.status IN ('pending', 'failed') AND e.tenant_id > :after
      ORDER BY e.tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT e.tenant_id FROM outbox_events e
             WHERE e.status IN ('pending', 'failed') AND e.tenant_id > t.tenant_id
             ORDER BY e.tenant_id LIMIT 1)
      FROM tenants t WHERE t.tenant_id IS NOT NULL
),
overrides(tenant_id, quota, share) AS (
    SELECT * FROM unnest(CAST(:tenants AS text[]), CAST(:quotas AS int[]), CAST(:shares AS int[]))
),
plan AS (
    SELECT t.tenant_id,
           COALESCE(o.quota, :quota) AS quota,
           COALESCE(o.share, :quota * :rounds) AS share
      FROM tenants t LEFT JOIN overrides o ON o.tenant_id = t.tenant_id
     WHERE t.tenant_id IS NOT NULL
),
claimed AS (
    SELECT c.*, p.quota,
           row_number() OVER (PARTITION BY c.tenant_id ORDER BY c.next_attempt_at, c.id) AS rn
      FROM plan p
     CROSS JOIN LATERAL (
        SELECT e.id, e.tenant_id, e.topic, e.key, e.headers, e.payload, e.attempts,
               e.created_at, e.next_attempt_at
          FROM outbox_events e
         WHERE e.tenant_id = p.tenant_id
           AND e.status IN ('pending', 'failed')
           AND e.next_attempt_at <= now()
         ORDER BY e.next_attempt_at, e.id
         LIMIT p.share
         FOR UPDATE OF e SKIP LOCKED
     ) c
)
SELECT id, tenant_id, topic, key, headers, payload, attempts,
       EXTRACT(EPOCH FROM created_at)::float8 AS created_epoch
  FROM claimed
 ORDER BY (rn - 1) / quota, tenant_id, rn
 LIMIT :batch_size
"""
CLAIM = text(CLAIM_SQL)
EXPLAIN_CLAIM = text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)" + CLAIM_SQL)

MARK_SENT = text(
    """
UPDATE outbox_events AS e
   SET status = 'sent', attempts = e.attempts + 1, last_error = NULL,
       sent_at = to_timestamp(v.acked_at), "partition" = v.part, "offset" = v.off
  FROM unnest(CAST(:ids AS bigint[]), CAST(:partitions AS int[]), CAST(:offsets AS bigint[]),
              CAST(:acked_at AS float8[])) AS v(id, part, off, acked_at)
 WHERE e.id = v.id
"""
)

MARK_FAILED = text(
    """
UPDATE outbox_events AS e
   SET status = v.status, attempts = e.attempts + 1, last_error = v.error,
       next_attempt_at = clock_timestamp() + make_interval(secs => v.delay_s)
  FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:errors AS text[]),
              CAST(:delays AS float8[])) AS v(id, status, error, delay_s)
 WHERE e.id = v.id
"""
)

# Anything due now that is not locked by a claim: `--drain` stops when this is false.
ANY_DUE = text(
    """
SELECT EXISTS (
    SELECT 1 FROM outbox_events e
     WHERE e.status IN ('pending', 'failed') AND e.next_attempt_at <= now()
       FOR UPDATE SKIP LOCKED
)
"""
)

# The gauges: rows not yet published (pending or waiting for a retry) and the oldest's age, per tenant.
PENDING_BY_TENANT = text(
    """
SELECT tenant_id, count(*) AS pending,
       EXTRACT(EPOCH FROM clock_timestamp() - min(created_at))::float8 AS oldest_age_s
  FROM outbox_events
 WHERE status IN ('pending', 'failed')
 GROUP BY tenant_id
"""
)


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


def claim(conn: Connection, plan: ClaimPlan) -> list[ClaimedRow]:
    """Lock and return up to `plan.batch_size` due rows, fairly across tenants (caller's transaction)."""
    result = conn.execute(
        CLAIM,
        {
            "after": plan.after,
            "tenants": list(plan.tenants),
            "quotas": list(plan.quotas),
            "shares": list(plan.shares),
            "quota": plan.quota,
            "rounds": plan.rounds,
            "batch_size": plan.batch_size,
        },
    )
    return [
        ClaimedRow(r[0], r[1], r[2], r[3], r[4] or {}, bytes(r[5]), r[6], r[7])
        for r in result.tuples()
    ]


def mark_sent(
    conn: Connection, ids: Sequence[int], partitions: Sequence[int], offsets: Sequence[int], acked_at: Sequence[float]
) -> None:
    if ids:
        conn.execute(
            MARK_SENT,
            {"ids": list(ids), "partitions": list(partitions), "offsets": list(offsets), "acked_at": list(acked_at)},
        )


def mark_failed(
    conn: Connection, ids: Sequence[int], statuses: Sequence[str], errors: Sequence[str], delays: Sequence[float]
) -> None:
    if ids:
        conn.execute(
            MARK_FAILED,
            {"ids": list(ids), "statuses": list(statuses), "errors": list(errors), "delays": list(delays)},
        )


def any_due(conn: Connection) -> bool:
    return bool(conn.execute(ANY_DUE).scalar())


def pending_by_tenant(conn: Connection) -> list[tuple[str, int, float]]:
    return [(r[0], int(r[1]), float(r[2] or 0.0)) for r in conn.execute(PENDING_BY_TENANT).tuples()]


def explain_claim(conn: Connection, plan: ClaimPlan) -> str:
    """EXPLAIN of the claim with these parameters (tests check it walks the partial index)."""
    params: dict[str, Any] = {
        "after": plan.after, "tenants": list(plan.tenants), "quotas": list(plan.quotas),
        "shares": list(plan.shares), "quota": plan.quota, "rounds": plan.rounds, "batch_size": plan.batch_size,
    }
    return "\n".join(str(row[0]) for row in conn.execute(EXPLAIN_CLAIM, params))
