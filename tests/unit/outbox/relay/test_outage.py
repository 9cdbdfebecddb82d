"""A 20-minute broker outage, driven through the relay's decisions with a fake clock: no row ends dead.

The relay's loop is reduced to its decisions (circuits -> which tenants may be claimed, judge ->
what each report means, the retry backoff); the broker is a function of the fake clock: every
delivery before the outage ends times out, every one after it succeeds. The defaults of the
relay's settings are used, so this is the production policy, not a tuned one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from outbox.relay.claim import ClaimedRow
from outbox.relay.judge import RetryPolicy, judge
from outbox.relay.policy import Circuits, CircuitState
from outbox.relay.publisher import Batch
from soma.settings import RelaySettings

OUTAGE_S = 20 * 60
STEP_S = 0.5


@dataclass
class Row:
    id: int
    tenant: str
    status: str = "pending"
    attempts: int = 0
    next_at: float = 0.0
    error: str | None = None
    fault: str | None = None  # an error code the broker always gives this row


class _Err:
    def __init__(self, code: str) -> None:
        self.code = code

    def name(self) -> str:
        return self.code

    def str(self) -> str:
        return f"{self.code} (simulated)"


class _Msg:
    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0


def _simulate(rows: list[Row], until_s: float, outage_s: float) -> dict[str, Any]:
    settings = RelaySettings()
    retry = RetryPolicy(settings.retry_base_s, settings.retry_max_s, settings.max_attempts)
    circuits = Circuits.from_settings(settings)
    rng = random.Random(7)
    timeout_s = settings.delivery_timeout_s
    in_flight: list[tuple[float, Batch]] = []  # (reports due at, batch)
    claimed: set[int] = set()
    by_id = {row.id: row for row in rows}
    opened = 0
    now = 0.0
    while now < until_s:
        limits = circuits.limits(now)
        due = [r for r in rows if r.status in ("pending", "failed") and r.next_at <= now and r.id not in claimed]
        taken: list[Row] = []
        allowed: dict[str, int] = {}
        for row in due:
            limit = limits.get(row.tenant)
            if limit is not None and allowed.get(row.tenant, 0) >= limit:
                continue
            allowed[row.tenant] = allowed.get(row.tenant, 0) + 1
            taken.append(row)
        if taken:
            for tenant, count in allowed.items():
                circuits.get(tenant).claimed(count)
            batch = Batch(None, [ClaimedRow(r.id, r.tenant, "t", "k", {}, b"v", r.attempts, 0.0)  # type: ignore[arg-type]
                                 for r in taken])
            batch.produced = batch.outstanding = len(taken)
            batch.closed = True
            claimed |= {r.id for r in taken}
            broker_up = now >= outage_s
            # Up: reports come at once; down: each record times out after the delivery timeout.
            in_flight.append((now if broker_up else now + timeout_s, batch))
        for report_at, batch in [b for b in in_flight if b[0] <= now]:
            in_flight.remove((report_at, batch))
            for index, claimed_row in enumerate(batch.rows):
                row = by_id[claimed_row.id]
                broker_up = report_at >= outage_s
                code = row.fault or (None if broker_up else "_MSG_TIMED_OUT")
                batch.on_delivery(index, _Err(code) if code else None, _Msg())  # type: ignore[arg-type]
            before = {t for t, c in circuits.by_tenant.items() if c.state is CircuitState.OPEN}
            outcome = judge(batch, retry, circuits, rng, now)
            opened += len({t for t, c in circuits.by_tenant.items() if c.state is CircuitState.OPEN} - before)
            for row_id in outcome.sent_ids:
                by_id[row_id].status = "sent"
            for row_id, status, error, delay, counted in zip(
                outcome.fail_ids, outcome.fail_statuses, outcome.fail_errors, outcome.fail_delays,
                outcome.fail_counted, strict=True,
            ):
                row = by_id[row_id]
                row.status, row.error, row.next_at = status, error, now + delay
                row.attempts += int(counted)
            claimed -= {r.id for r in batch.rows}
        now += STEP_S
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    return {"statuses": statuses, "opened": opened, "circuits": circuits}


def test_a_20_minute_outage_makes_no_dead_row_and_everything_is_sent_after_it() -> None:
    rows = [Row(i, f"tenant-{i % 3}") for i in range(30)]
    result = _simulate(rows, until_s=OUTAGE_S + 10 * 60, outage_s=OUTAGE_S)
    assert result["statuses"] == {"sent": 30}
    assert all(row.attempts == 0 for row in rows), "an outage used up attempts"
    assert result["opened"] >= 3  # every tenant's circuit opened during the outage...
    assert all(c.state is CircuitState.CLOSED for c in result["circuits"].by_tenant.values())  # ...and closed


def test_during_the_outage_rows_wait_failed_with_the_reason_and_none_is_dead() -> None:
    rows = [Row(i, "acme") for i in range(5)]
    result = _simulate(rows, until_s=OUTAGE_S - 1, outage_s=OUTAGE_S)
    assert "dead" not in result["statuses"]
    assert result["statuses"].get("failed", 0) + result["statuses"].get("pending", 0) == 5
    assert any(row.error and row.error.startswith("_MSG_TIMED_OUT") for row in rows)


def test_the_same_policy_still_parks_a_row_the_broker_refuses_for_its_own_fault() -> None:
    rows = [Row(0, "acme", fault="MSG_SIZE_TOO_LARGE"), Row(1, "globex")]
    result = _simulate(rows, until_s=OUTAGE_S + 60 * 60, outage_s=OUTAGE_S)
    assert result["statuses"] == {"dead": 1, "sent": 1}
    assert rows[0].attempts == RelaySettings().max_attempts
    assert rows[0].error is not None
    assert rows[0].error.startswith("MSG_SIZE_TOO_LARGE")
