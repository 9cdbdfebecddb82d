"""What the broker's reports on a batch mean for its rows, the circuits and the metrics.

`judge` decides (sent, failed with a backoff, or dead; which rows were never reported and stay
as they were); `Committer` writes those decisions in the batch's own transaction on a thread
of its own, so the relay's loop keeps claiming and producing while PostgreSQL works.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from outbox.claim import mark_failed, mark_sent
from outbox.policy import Circuits, backoff_delay
from outbox.publisher import Batch

log = logging.getLogger("outbox.relay")


@dataclass
class Outcome:
    """The decisions on one batch, ready to be written."""

    batch: Batch
    sent_ids: list[int] = field(default_factory=list)
    sent_partitions: list[int] = field(default_factory=list)
    sent_offsets: list[int] = field(default_factory=list)
    sent_acked_at: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    fail_ids: list[int] = field(default_factory=list)
    fail_statuses: list[str] = field(default_factory=list)
    fail_errors: list[str] = field(default_factory=list)
    fail_delays: list[float] = field(default_factory=list)
    published: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead: Counter[tuple[str, str]] = field(default_factory=Counter)
    unreported_tenants: set[str] = field(default_factory=set)
    committed: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float
    max_s: float
    max_attempts: int


def judge(batch: Batch, retry: RetryPolicy, circuits: Circuits, rng: random.Random, now: float) -> Outcome:
    """Sort every row of `batch` by its delivery report and feed the tenants' circuits."""
    out = Outcome(batch)
    for index, row in enumerate(batch.rows):
        if index >= batch.produced or batch.acked_at[index] == 0.0:
            out.unreported_tenants.add(row.tenant_id)  # never produced, or no report yet: released at commit
            continue
        error = batch.errors[index]
        circuit = circuits.get(row.tenant_id)
        if error is None:
            out.sent_ids.append(row.id)
            out.sent_partitions.append(batch.partitions[index])
            out.sent_offsets.append(batch.offsets[index])
            out.sent_acked_at.append(batch.acked_at[index])
            out.latencies.append(max(0.0, batch.acked_at[index] - row.created_epoch))
            out.published[(row.tenant_id, row.topic)] += 1
            circuit.success()
            continue
        attempts = row.attempts + 1
        is_dead = attempts >= retry.max_attempts
        out.fail_ids.append(row.id)
        out.fail_statuses.append("dead" if is_dead else "failed")
        out.fail_errors.append(error)
        out.fail_delays.append(0.0 if is_dead else backoff_delay(attempts, retry.base_s, retry.max_s, rng))
        (out.dead if is_dead else out.failed)[(row.tenant_id, row.topic)] += 1
        circuit.failure(now)
    for tenant in out.unreported_tenants:
        circuits.get(tenant).released()
    return out


def write(outcome: Outcome) -> None:
    """Record the outcome in the batch's transaction and commit it (this releases the claim)."""
    batch = outcome.batch
    try:
        mark_sent(batch.conn, outcome.sent_ids, outcome.sent_partitions, outcome.sent_offsets, outcome.sent_acked_at)
        mark_failed(batch.conn, outcome.fail_ids, outcome.fail_statuses, outcome.fail_errors, outcome.fail_delays)
        batch.conn.commit()
        outcome.committed = True
    except SQLAlchemyError as exc:
        # The records are on the broker but not marked: they will be published again (at least once).
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        log.error("relay: could not record %d delivery report(s): %s", len(batch.rows), first[0] if first else exc)
        with contextlib.suppress(SQLAlchemyError):
            batch.conn.rollback()
    finally:
        with contextlib.suppress(SQLAlchemyError):
            batch.conn.close()


class Committer:
    """One background thread writing outcomes in order; the loop collects them with `done()`."""

    def __init__(self) -> None:
        self._todo: queue.Queue[Outcome | None] = queue.Queue()
        self._done: queue.Queue[Outcome] = queue.Queue()
        self.pending = 0  # submitted, not yet collected
        self._thread = threading.Thread(target=self._run, name="relay-committer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (outcome := self._todo.get()) is not None:
            write(outcome)
            self._done.put(outcome)

    def submit(self, outcome: Outcome) -> None:
        self.pending += 1
        self._todo.put(outcome)

    def done(self, wait_s: float = 0.0) -> list[Outcome]:
        """Outcomes written since the last call (waits up to `wait_s` for the first one)."""
        finished: list[Outcome] = []
        with contextlib.suppress(queue.Empty):
            finished.append(self._done.get(timeout=wait_s) if wait_s > 0 else self._done.get_nowait())
            while True:
                finished.append(self._done.get_nowait())
        self.pending -= len(finished)
        return finished

    def close(self, timeout_s: float) -> list[Outcome]:
        """Write what is queued, stop the thread, and return the outcomes not yet collected."""
        self._todo.put(None)
        self._thread.join(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        finished = []
        while self.pending > 0 and time.monotonic() < deadline:
            finished.extend(self.done(0.05))
        return finished
