"""The relay's coarse-timer chores, on a thread of their own, off the publishing path:
the table metrics (rows by status, bytes) and the retention prune (outbox/retention.py).

A prune run is bounded (SOMA_OUTBOX_RELAY_PRUNE_BUDGET_S, windows of
SOMA_OUTBOX_RELAY_PRUNE_BATCH rows, a pause as long as each window after it), and only one
relay prunes at a time (an advisory lock; the others skip that run). A run that reached rows
younger than the cutoff waits SOMA_OUTBOX_RELAY_PRUNE_INTERVAL_S for the next; one that spent
its budget first is followed by the next after a pause as long as the budget (catching up). It runs even while the
relay is behind: a relay at capacity would otherwise never prune, and the table (whose
indexes the claims walk) would grow without bound; what it costs the relay is measured in
bench/outbox_prune.py.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from outbox.relay.metrics import RelayMetrics
from outbox.retention import PruneRequest, PruneResult, prune, table_stats
from soma.errors import first_line
from soma.settings import RelaySettings

log = logging.getLogger("outbox.relay")

FIRST_PRUNE_MAX_S = 60.0  # a relay restarted more often than the interval still prunes


def prune_request(settings: RelaySettings) -> PruneRequest:
    return PruneRequest(settings.retention, settings.dead_retention, settings.prune_batch, settings.prune_budget_s)


class Upkeep:
    """Runs `tick` every second or so until `stop` is set; each chore when its interval is due."""

    def __init__(self, engine: Engine, settings: RelaySettings, metrics: RelayMetrics, stop: threading.Event) -> None:
        self.engine, self.settings, self.metrics, self._stop = engine, settings, metrics, stop
        self.request = prune_request(settings)
        now = time.monotonic()
        self.next_stats = now
        self.next_prune = now + min(settings.prune_interval_s, FIRST_PRUNE_MAX_S)
        self.last: PruneResult | None = None

    @property
    def prunes(self) -> bool:
        return self.request.sent_s is not None or self.request.dead_s is not None

    def run(self) -> None:
        if self.prunes:  # the stalled-prune alert counts from here until the first run succeeds
            self.metrics.prune_success.set(time.time())
        while not self._stop.is_set():
            self.tick(time.monotonic())
            due = min(self.next_stats, self.next_prune) if self.prunes else self.next_stats
            self._stop.wait(max(0.05, due - time.monotonic()))

    def tick(self, now: float) -> None:
        if now >= self.next_stats:
            self.next_stats = now + self.settings.table_metrics_interval_s
            self.refresh_table_metrics()
        if self.prunes and now >= self.next_prune:
            self.next_prune = now + self.settings.prune_interval_s
            result = self.prune_once()
            if result is not None and not result.complete and not result.skipped:
                # Behind (the budget ran out first): go on after a pause as long as the budget, so the
                # prune keeps up with any write rate below a quarter of its own, instead of falling behind.
                self.next_prune = time.monotonic() + self.settings.prune_budget_s

    def refresh_table_metrics(self) -> None:
        try:
            with self.engine.connect() as conn:
                stats = table_stats(conn)
        except SQLAlchemyError as exc:
            log.warning("relay: table metrics not refreshed: %s", first_line(exc))
            return
        self.metrics.table_bytes.set(stats.bytes)
        for status, rows in stats.rows.items():
            self.metrics.table_rows.labels(status).set(rows)

    def prune_once(self) -> PruneResult | None:
        try:
            result = prune(self.engine, self.request, exclusive=True, stop=self._stop.is_set, sleep=self._stop.wait)
        except SQLAlchemyError as exc:
            log.warning("relay: prune failed: %s", first_line(exc))
            return None
        self.last = result
        if result.skipped:
            log.debug("relay: prune skipped, another relay is pruning")
            return result
        self.metrics.pruned.labels("sent").inc(result.sent)
        self.metrics.pruned.labels("dead").inc(result.dead)
        self.metrics.prune_success.set(time.time())
        level = logging.INFO if result.sent or result.dead or not result.complete else logging.DEBUG
        log.log(level, "relay: pruned %d sent and %d dead row(s) in %.1fs%s", result.sent, result.dead,
                result.elapsed_s, "" if result.complete else " (budget spent: the rest at the next run)")
        return result
