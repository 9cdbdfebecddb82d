"""The judge's verdicts on a batch the broker reported on: plain data in, decisions out (no I/O)."""

from __future__ import annotations

import ast
import random
from pathlib import Path
from typing import Any

from outbox.relay.claim import ClaimedRow
from outbox.relay.judge import RetryPolicy, judge, row_fault
from outbox.relay.policy import Circuits, CircuitState
from outbox.relay.publisher import Batch


def _row(i: int, tenant: str, attempts: int = 0) -> ClaimedRow:
    return ClaimedRow(i, tenant, "chat.messages", f"{tenant}:s", {"tenant": tenant}, b"v", attempts, 1000.0)


def _report(
    batch: Batch, index: int, error: str | None = None, partition: int = 0, offset: int = 0,
    code: str = "_MSG_TIMED_OUT",
) -> None:
    class Msg:
        def partition(self) -> int:
            return partition

        def offset(self) -> int:
            return offset

    class Err:
        def name(self) -> str:
            return code

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
    _report(batch, 2, error="Broker: Message size too large", code="MSG_SIZE_TOO_LARGE")
    assert batch.complete
    circuits = Circuits(threshold=1, reset_s=10)
    outcome = judge(batch, RetryPolicy(1.0, 60.0, max_attempts=3), circuits, random.Random(0), now=50.0)
    assert outcome.sent_ids == [1]
    assert outcome.sent_partitions == [2]
    assert outcome.sent_offsets == [41]
    assert outcome.fail_ids == [2, 3]
    assert outcome.fail_statuses == ["failed", "dead"]  # row 3 used its third and last attempt
    assert outcome.fail_counted == [False, True]  # a timeout is not row 2's fault
    assert outcome.fail_errors[0] == "_MSG_TIMED_OUT: Local: Message timed out"
    assert 1.0 <= outcome.fail_delays[0] <= 2.0
    assert outcome.fail_delays[1] == 0.0
    assert outcome.unreported_tenants == {"b"}  # row 4 was never produced: left pending
    assert outcome.published == {("a", "chat.messages"): 1}
    assert outcome.dead == {("b", "chat.messages"): 1}
    assert circuits.get("a").state is CircuitState.OPEN  # its last report was a failure (threshold 1)
    assert outcome.latencies
    assert outcome.latencies[0] > 0


def test_the_judge_the_policy_and_the_rate_limits_import_nothing_that_does_io() -> None:
    """Decisions only: no database, broker or network module at run time (type-only imports excepted)."""
    allowed = {
        "__future__", "math", "random", "collections", "collections.abc", "dataclasses", "typing", "enum",
        "outbox.errors", "outbox.relay.policy", "soma.backoff", "soma.settings",
    }
    for name in ("judge", "policy", "rate"):
        tree = ast.parse((Path(__file__).parents[4] / "outbox" / "relay" / f"{name}.py").read_text())
        imported = {
            (node.module if isinstance(node, ast.ImportFrom) else node.names[0].name) or ""
            for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
        }
        assert imported <= allowed, f"{name}: {sorted(imported - allowed)}"


def test_row_faults_and_path_failures_are_told_apart() -> None:
    for code in ("MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "INVALID_RECORD", "_UNKNOWN_TOPIC",
                 "UNKNOWN_TOPIC_OR_PART", "TOPIC_AUTHORIZATION_FAILED", "_ENCODING", "_KAFKA_EXCEPTION",
                 "SOMETHING_NOBODY_CLASSIFIED", None):
        assert row_fault(code), code
    for code in ("_MSG_TIMED_OUT", "_TRANSPORT", "_ALL_BROKERS_DOWN", "NOT_ENOUGH_REPLICAS", "REQUEST_TIMED_OUT",
                 "LEADER_NOT_AVAILABLE", "NOT_LEADER_FOR_PARTITION", "_QUEUE_FULL", "_FATAL", "_PURGE_QUEUE"):
        assert not row_fault(code), code


def test_a_path_failure_never_makes_a_row_dead_however_many_attempts_it_has() -> None:
    batch = _batch([_row(1, "a", attempts=9)])
    _report(batch, 0, error="Local: Broker transport failure", code="_TRANSPORT")
    outcome = judge(batch, RetryPolicy(1.0, 60.0, max_attempts=10), Circuits(5, 30), random.Random(0), now=0.0)
    assert outcome.fail_statuses == ["failed"]
    assert outcome.fail_counted == [False]
    assert outcome.fail_delays[0] > 0
    assert outcome.failed == {("a", "chat.messages"): 1}
    assert not outcome.dead


def test_a_row_refused_by_produce_is_judged_like_a_reported_failure() -> None:
    batch = Batch(None, [_row(1, "a"), _row(2, "b")])  # type: ignore[arg-type]
    batch.refused(0, "MSG_SIZE_TOO_LARGE", "Broker: Message size too large")
    batch.produced += 1  # row 2 produced, its report still missing
    batch.outstanding += 1
    batch.closed = True
    assert not batch.complete
    _report(batch, 1, partition=1, offset=7)
    assert batch.complete
    outcome = judge(batch, RetryPolicy(1.0, 60.0, max_attempts=1), Circuits(5, 30), random.Random(0), now=0.0)
    assert outcome.fail_ids == [1]
    assert outcome.fail_statuses == ["dead"]
    assert outcome.fail_errors == ["MSG_SIZE_TOO_LARGE: Broker: Message size too large"]
    assert outcome.sent_ids == [2]
