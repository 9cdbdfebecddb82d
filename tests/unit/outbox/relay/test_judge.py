"""The judge's verdicts on a batch the broker reported on: plain data in, decisions out (no I/O)."""

from __future__ import annotations

import ast
import random
from pathlib import Path
from typing import Any

from outbox.relay.claim import ClaimedRow
from outbox.relay.judge import RetryPolicy, judge
from outbox.relay.policy import Circuits, CircuitState
from outbox.relay.publisher import Batch


def _row(i: int, tenant: str, attempts: int = 0) -> ClaimedRow:
    return ClaimedRow(i, tenant, "chat.messages", f"{tenant}:s", {"tenant": tenant}, b"v", attempts, 1000.0)


def _report(batch: Batch, index: int, error: str | None = None, partition: int = 0, offset: int = 0) -> None:
    class Msg:
        def partition(self) -> int:
            return partition

        def offset(self) -> int:
            return offset

    class Err:
        def name(self) -> str:
            return "_MSG_TIMED_OUT"

        def str(self) -> str:
            return error or ""

    batch.on_delivery(index, Err() if error else None, Msg())  # type: ignore[arg-type]


def _batch(rows: list[ClaimedRow], produced: int | None = None) -> Batch:
    conn: Any = None
    batch = Batch(conn, rows)
    batch.produced = batch.outstanding = len(rows) if produced is None else produced
    batch.closed = True
    return batch


def test_judge_sorts_rows_by_report() -> None:
    rows = [_row(1, "a"), _row(2, "a", attempts=1), _row(3, "b", attempts=2), _row(4, "b")]
    batch = _batch(rows, produced=3)
    _report(batch, 0, partition=2, offset=41)
    _report(batch, 1, error="Local: Message timed out")
    _report(batch, 2, error="Local: Message timed out")
    assert batch.complete
    circuits = Circuits(threshold=1, reset_s=10)
    outcome = judge(batch, RetryPolicy(1.0, 60.0, max_attempts=3), circuits, random.Random(0), now=50.0)
    assert outcome.sent_ids == [1]
    assert outcome.sent_partitions == [2]
    assert outcome.sent_offsets == [41]
    assert outcome.fail_ids == [2, 3]
    assert outcome.fail_statuses == ["failed", "dead"]  # row 3 used its third and last attempt
    assert outcome.fail_errors[0] == "_MSG_TIMED_OUT: Local: Message timed out"
    assert 1.0 <= outcome.fail_delays[0] <= 2.0
    assert outcome.fail_delays[1] == 0.0
    assert outcome.unreported_tenants == {"b"}  # row 4 was never produced: left pending
    assert outcome.published == {("a", "chat.messages"): 1}
    assert outcome.dead == {("b", "chat.messages"): 1}
    assert circuits.get("a").state is CircuitState.OPEN  # its last report was a failure (threshold 1)
    assert outcome.latencies
    assert outcome.latencies[0] > 0


def test_the_judge_and_the_policy_import_nothing_that_does_io() -> None:
    """Decisions only: no database, broker or network module at run time (type-only imports excepted)."""
    allowed = {
        "__future__", "random", "collections", "collections.abc", "dataclasses", "typing", "enum",
        "outbox.errors", "outbox.relay.policy", "soma.backoff", "soma.settings",
    }
    for name in ("judge", "policy"):
        tree = ast.parse((Path(__file__).parents[4] / "outbox" / "relay" / f"{name}.py").read_text())
        imported = {
            (node.module if isinstance(node, ast.ImportFrom) else node.names[0].name) or ""
            for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
        }
        assert imported <= allowed, f"{name}: {sorted(imported - allowed)}"
