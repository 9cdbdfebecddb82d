"""Writes the judge's decisions: each batch's outcome in the batch's own transaction, then commit.

On a thread of its own, so the relay's loop keeps claiming and producing while PostgreSQL works.
Committing releases the batch's claim; a failed commit leaves its rows claimable again.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time

from sqlalchemy.exc import SQLAlchemyError

from outbox.relay.claim import mark_failed, mark_sent
from outbox.relay.judge import Outcome

log = logging.getLogger("outbox.relay")


def write(outcome: Outcome) -> None:
    """Record the outcome in the batch's transaction and commit it (this releases the claim)."""
    batch = outcome.batch
    try:
        mark_sent(batch.conn, outcome.sent_ids, outcome.sent_partitions, outcome.sent_offsets, outcome.sent_acked_at)
        mark_failed(batch.conn, outcome.fail_ids, outcome.fail_statuses, outcome.fail_errors, outcome.fail_delays,
                    outcome.fail_counted)
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
