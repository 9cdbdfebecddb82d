"""The relay: moves committed outbox rows to Kafka, fairly across tenants, at least once.

One loop, one producer, up to `outbox_relay_pipeline_depth` claimed batches in flight, each
in its own open transaction that keeps its rows locked (FOR UPDATE SKIP LOCKED, so other
relays pass over them). A batch is marked (sent with partition/offset, or failed with a
backoff, or dead) and committed only once the broker has reported on every one of its rows.
A crash at any point aborts the open transactions: those rows are claimed again later.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import random
import signal
import threading
import time
from collections import Counter
from concurrent import futures
from types import FrameType

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from outbox.errors import RelayError
from outbox.relay.circuit_sleep import CircuitSleep
from outbox.relay.claim import Claim, any_due, claim, pending_by_tenant, relay_engine
from outbox.relay.committer import Committer
from outbox.relay.judge import RetryPolicy, judge
from outbox.relay.live import LiveMirror
from outbox.relay.metrics import Heartbeat, MetricsServer, RelayMetrics, RelayStats, log_outcome, peak_rss_mb
from outbox.relay.policy import Circuits, CircuitState, ClaimPlan, FairShare, PollPacer, TenantActivity
from outbox.relay.publisher import Batch, Publisher
from outbox.relay.rate import RateLimits, merge_limits
from outbox.relay.upkeep import Upkeep
from outbox.relay.wakeup import Wakeup
from soma.clients import database_errors
from soma.errors import InfrastructureUnavailable, first_line
from soma.observability.logs import log_context
from soma.observability.readiness import Readiness
from soma.settings import Settings

log = logging.getLogger("outbox.relay")

STOP_CHECK_S = 1.0  # longest an idle wait goes without looking at the stop flag (idle wake-ups vs stop latency)
RETRY_BUCKET_S = 0.1  # retry times are remembered at this resolution (bounded memory)


class Relay:
    """A long-running relay. `run()` returns after `stop()` (or SIGTERM), or when drained."""

    def __init__(self, settings: Settings, *, serve_metrics: bool = True, rng: random.Random | None = None) -> None:
        self.settings = settings
        depth = settings.relay.pipeline_depth
        # Connections: LISTEN, one per batch in flight or committing, the claim thread, the gauges, the upkeep (table
        # metrics, prune), spare.
        self.engine: Engine = relay_engine(settings, pool_size=depth + 5)
        self.fair = FairShare(
            settings.relay.batch_size,
            settings.relay.tenant_quota,
            settings.relay.tenant_quotas,
        )
        self.circuits = Circuits.from_settings(settings.relay)
        self._stop = threading.Event()
        self.live = LiveMirror(settings, self._stop)  # config_updates: ENABLE_SLEEP, SLEEP_POLICY, RELAY_TENANT_RATE
        self.rates = RateLimits.from_settings(settings.relay, self.live)
        self._claim_rates: dict[str, int] = {}  # the rate limits of the claim in progress
        self._rate_gate = 0.0  # no claim before this moment (monotonic) unless woken: only rate-held rows are due
        self.pacer = PollPacer(settings.relay.poll_min_s, settings.relay.poll_max_s)
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.retry = RetryPolicy(
            settings.relay.retry_base_s, settings.relay.retry_max_s, settings.relay.max_attempts
        )
        self.metrics = RelayMetrics()
        self.activity = TenantActivity(settings.relay.tenant_idle_s)
        self._next_eviction = time.monotonic() + settings.relay.gauge_interval_s
        self.heartbeat = Heartbeat(stale_s=max(30.0, settings.relay.delivery_timeout_s * 2))
        self.readiness = Readiness(settings, "relay", ("kafka", "postgresql"), tables=("outbox_events",),
                                   extra={"loop": self.heartbeat.check})
        self.stats = RelayStats()
        self.in_flight: list[Batch] = []  # produced, awaiting delivery reports
        self.committer: Committer | None = None  # then judged, and written on its thread
        self.retry_times: set[float] = set()
        self.wakeup: Wakeup | None = None
        self.publisher: Publisher | None = None
        self.server: MetricsServer | None = None
        self._serve_metrics = serve_metrics
        self._gauges: threading.Thread | None = None
        self.upkeep = Upkeep(self.engine, settings.relay, self.metrics, self._stop)  # table metrics, prune
        self.circuit_sleep = CircuitSleep(
            settings, self.live, lambda record, report: self._parts()[1].produce_event(record, report),
            self.metrics.sleep_request,
        )
        self._upkeep: threading.Thread | None = None
        # Claims run on a thread of their own, one at a time, while the loop keeps producing.
        self._claims = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-claim")
        self._claim: futures.Future[tuple[Connection | None, Claim | None]] | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish in-flight deliveries, release its claims and return."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("relay: %s received, finishing in-flight deliveries", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def start(self) -> None:
        with database_errors(self.settings):  # unreachable: one line naming SOMA_DATABASE_URL
            self.wakeup = Wakeup(self.engine)
        self.publisher = Publisher(self.settings)
        self.committer = Committer()
        if self._serve_metrics:
            try:
                self.server = MetricsServer(
                    self.metrics, self.settings.relay.metrics_host, self.settings.relay.metrics_port,
                    self.heartbeat.report, self.readiness.report,
                )
            except OSError as exc:
                raise RelayError(
                    f"outbox relay: cannot serve metrics on {self.settings.relay.metrics_host}:"
                    f"{self.settings.relay.metrics_port} (SOMA_OUTBOX_RELAY_METRICS_PORT): {exc.strerror}"
                ) from exc
        self._gauges = threading.Thread(target=self._refresh_gauges, name="relay-gauges", daemon=True)
        self._gauges.start()
        self._upkeep = threading.Thread(target=self.upkeep.run, name="relay-upkeep", daemon=True)
        self._upkeep.start()
        self.live.start()
        # Everything built so far lives as long as the relay: out of the collector's sight, a full
        # collection walks only the objects of batches in flight (no pause proportional to the
        # imported libraries in the latency tail).
        gc.freeze()

    def run(self, *, drain: bool = False) -> RelayStats:
        """Relay until stopped; with `drain`, return once nothing is due and nothing is in flight."""
        if self.wakeup is None:
            self.start()
        try:
            self._loop(drain)
        finally:
            self._shutdown()
        return self.stats

    # --- the loop --------------------------------------------------------------------------
    def _loop(self, drain: bool) -> None:
        _, publisher, committer = self._parts()
        depth = self.settings.relay.pipeline_depth
        while not self._stop.is_set():
            busy = len(self.in_flight) + committer.pending
            self.heartbeat.beat("busy" if busy else ("idle" if self._parts()[0].idle else "polling"))
            self._collect()
            self._finish_completed()
            if not self.in_flight:
                self._renew_producer_if_fatal()
            self._forget_idle_tenants()
            free = depth - len(self.in_flight) - committer.pending
            if self._claim is None and free > 0:
                if time.monotonic() < self._rate_gate:
                    # Only rate-held rows are due: idle until their tokens (`_wait_idle`) or a NOTIFY. The first
                    # step only advertises idleness; the claim after it gives a waiting tenant nothing before its
                    # next step of tokens (`RateLimits.limits`), so it finds nothing and the relay waits.
                    if not busy:
                        self._idle_step(busy=False)
                        self._rate_gate = 0.0
                        continue
                else:
                    self._claim = self._claims.submit(self._claim_rows, self._plan())
            if self._claim is None:  # the pipeline is full: serve delivery reports and commits
                if self.in_flight:
                    publisher.poll(0.02)
                else:
                    self._collect(0.02)
                continue
            if self.in_flight:  # deliver reports while PostgreSQL works on the next claim
                publisher.poll(0.001)
            else:
                futures.wait([self._claim], timeout=0.02)
            if not self._claim.done():
                continue
            found = self._take_claim(self._claim)
            self._claim = None
            if found:
                self.pacer.found_rows()
                self._idle_step(busy=True)
                continue
            if self.in_flight or committer.pending:
                continue
            if drain:
                if self._nothing_due():
                    return
                self._sleep(self.pacer.next_wait())  # due rows locked by another relay: look again soon
                continue
            self._idle_step(busy=False)

    def _idle_step(self, busy: bool) -> None:
        """Stop advertising idleness (busy), or go (towards) idle: a bounded wait for the commits in
        progress, a last claim (next turn), then a wait for a NOTIFY. A lost LISTEN connection is
        replaced; meanwhile the relay keeps polling."""
        wakeup = self._parts()[0]
        try:
            if busy:
                wakeup.busy()
            elif not wakeup.idle:
                wakeup.try_idle(self.settings.relay.poll_max_s)
            else:
                self._wait_idle(wakeup)
        except (SQLAlchemyError, psycopg.Error) as exc:
            log.error("relay: LISTEN connection lost (%s); reconnecting", first_line(exc))
            wakeup.close()
            self._sleep(self.settings.relay.poll_max_s)
            with contextlib.suppress(SQLAlchemyError, InfrastructureUnavailable), database_errors(self.settings):
                self.wakeup = Wakeup(self.engine)

    def _parts(self) -> tuple[Wakeup, Publisher, Committer]:
        if self.wakeup is None or self.publisher is None or self.committer is None:
            raise RelayError("outbox relay: start() was not called")
        return self.wakeup, self.publisher, self.committer

    def _plan(self) -> ClaimPlan:
        """The next claim's plan: fair shares, capped by the circuits and the rate limits (kept for the claim)."""
        now = time.monotonic()
        self._claim_rates = self.rates.limits(now)
        return self.fair.plan(merge_limits(self.circuits.limits(now), self._claim_rates), self.rates.default_limit())

    def _wait_idle(self, wakeup: Wakeup) -> None:
        """Idle: wait for a writer's NOTIFY, a retry coming due, a circuit to half-open, a rate-held tenant's
        tokens, or the timeout."""
        now = time.monotonic()
        deadline = now + self.settings.relay.idle_timeout_s
        for moment in (self._next_retry(now), self.circuits.next_change(), self.rates.next_refill(now)):
            if moment is not None:
                deadline = min(deadline, moment)
        while not self._stop.is_set():
            self._parts()[1].poll(0)  # delivery reports of the circuit's sleep requests
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if wakeup.wait(min(left, STOP_CHECK_S)):
                wakeup.busy()
                return
            self.heartbeat.beat("idle")

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _next_retry(self, now: float) -> float | None:
        self.retry_times = {t for t in self.retry_times if t > now}
        return min(self.retry_times, default=None)

    def _nothing_due(self) -> bool:
        with self.engine.connect() as conn, conn.begin():
            return not any_due(conn)

    def _forget_idle_tenants(self) -> None:
        """Every gauge interval: drop the series and circuits of tenants idle for SOMA_OUTBOX_RELAY_TENANT_IDLE_S."""
        now = time.monotonic()
        if now < self._next_eviction:
            return
        self._next_eviction = now + self.settings.relay.gauge_interval_s
        gone = self.activity.idle(now, self.metrics.backlog_tenants, self.circuits)
        if gone:
            self.circuits.forget(gone)
            self.rates.forget(gone)
            self.metrics.forget(gone)
            log.debug("relay: forgot %d idle tenant(s)", len(gone))

    def _renew_producer_if_fatal(self) -> None:
        _, publisher, _ = self._parts()
        if publisher.renew_if_fatal():
            log.warning("relay: producer replaced after a fatal error")

    # --- claim, send, finish ---------------------------------------------------------------
    def _claim_rows(self, plan: ClaimPlan) -> tuple[Connection | None, Claim | None]:
        """On the claim thread: lock the next batch in a transaction of its own (left open)."""
        try:
            conn = self.engine.connect()
        except SQLAlchemyError as exc:
            log.error("relay: database unavailable: %s", first_line(exc))
            return None, None
        try:
            conn.begin()
            claimed = claim(conn, plan)
        except SQLAlchemyError as exc:
            log.error("relay: claim failed: %s", first_line(exc))
            with contextlib.suppress(SQLAlchemyError):
                conn.rollback()
            conn.close()
            return None, None
        if not claimed.rows:
            conn.rollback()
            conn.close()
            return None, claimed
        return conn, claimed

    def _take_claim(self, future: futures.Future[tuple[Connection | None, Claim | None]]) -> int:
        """Account for a finished claim and hand its rows to the producer; the number of rows."""
        _, publisher, _ = self._parts()
        conn, claimed = future.result()
        if claimed is None:
            self.metrics.claims.labels("error").inc()
            self._sleep(self.settings.relay.poll_max_s)
            return 0
        rows = claimed.rows
        self.fair.claimed(rows[-1].tenant_id if rows else None, len(rows), claimed.visited, claimed.last_visited)
        self._spend_tokens(claimed, visited_all=claimed.visited < self.fair.max_tenants)
        if conn is None or not rows:
            self.metrics.claims.labels("empty").inc()
            return 0
        self.metrics.claims.labels("rows").inc()
        self.stats.claims += 1
        if self.stats.first_claim_at is None:
            self.stats.first_claim_at = time.monotonic()
        limited = {t for t, circuit in self.circuits.by_tenant.items() if circuit.state is not CircuitState.CLOSED}
        if limited:
            probed = Counter(row.tenant_id for row in rows if row.tenant_id in limited)
            for tenant, count in probed.items():
                self.circuits.get(tenant).claimed(count)
            self._export_circuits()
        batch = Batch(conn, rows, claimed.held)
        if self._stop.is_set():  # stopping: release the rows at once instead of sending them
            batch.closed = True
        else:
            publisher.send(batch, keep_going=lambda: not self._stop.is_set())
        self.in_flight.append(batch)
        self.metrics.in_flight.inc(len(rows))
        return len(rows)

    def _spend_tokens(self, claimed: Claim, visited_all: bool) -> None:
        """Rate limits: spend the claimed rows' tokens; claims may have to wait for more (the gate)."""
        held = Counter(r.tenant_id for r in claimed.rows if r.id in claimed.held)
        capped, gate = self.rates.after_claim(Counter(r.tenant_id for r in claimed.rows), held, self._claim_rates,
                                              visited_all, time.monotonic())
        self.metrics.rate_capped(capped, self.rates.waiting)
        if gate is not None:
            self._rate_gate = gate

    def _finish_completed(self) -> None:
        """Judge every batch the broker has fully reported on and hand it to the committer."""
        for batch in [b for b in self.in_flight if b.complete]:
            self.in_flight.remove(batch)
            self._finish(batch)

    def _finish(self, batch: Batch) -> None:
        now = time.monotonic()
        self.activity.seen({row.tenant_id for row in batch.rows}, now)
        before = {t: c.state for t, c in self.circuits.by_tenant.items()}
        outcome = judge(batch, self.retry, self.circuits, self.rng, now)
        for delay in set(outcome.fail_delays):
            if delay > 0:
                self.retry_times.add(math.ceil((now + delay) / RETRY_BUCKET_S) * RETRY_BUCKET_S)
        self._parts()[2].submit(outcome)
        self.metrics.record(outcome)
        self.stats.record(outcome)
        log_outcome(batch, outcome)
        for tenant, circuit in self.circuits.by_tenant.items():
            if circuit.state is CircuitState.OPEN and before.get(tenant) is not CircuitState.OPEN:
                self.metrics.circuit_opened.labels(tenant).inc()
                with log_context(tenant=tenant):
                    log.warning("relay: circuit of tenant %r open (%d consecutive failures)", tenant, circuit.failures)
        self._export_circuits()
        self.circuit_sleep.changed(before, {t: c.state for t, c in self.circuits.by_tenant.items()})

    def _collect(self, wait_s: float = 0.0) -> None:
        """Take note of outcomes the committer has written (their rows are no longer claimed)."""
        for outcome in self._parts()[2].done(wait_s):
            self.metrics.in_flight.dec(len(outcome.batch.rows))
            self.stats.last_commit_at = time.monotonic()

    def _export_circuits(self) -> None:
        for tenant, circuit in self.circuits.by_tenant.items():
            self.metrics.circuit.labels(tenant).set(int(circuit.state))

    # --- background gauges and shutdown ----------------------------------------------------
    def _refresh_gauges(self) -> None:
        while not self._stop.is_set():
            try:
                with self.engine.connect() as conn:
                    self.metrics.set_pending(pending_by_tenant(conn))
            except SQLAlchemyError as exc:
                log.warning("relay: pending gauges not refreshed: %s", first_line(exc))
            self._stop.wait(self.settings.relay.gauge_interval_s)

    def _shutdown(self) -> None:
        self.heartbeat.beat("stopping")
        wakeup, publisher, committer = self._parts()
        if self._claim is not None:  # a claim still running: its rows are released, not sent
            self._take_claim(self._claim)
            self._claim = None
        self._claims.shutdown(wait=True)
        deadline = time.monotonic() + self.settings.relay.delivery_timeout_s + 5
        while self.in_flight and time.monotonic() < deadline:
            publisher.poll(0.05)
            self._finish_completed()
        for batch in list(self.in_flight):  # reports still missing: record what came, release the rest
            self.in_flight.remove(batch)
            self._finish(batch)
        for outcome in committer.close(timeout_s=30):
            self.metrics.in_flight.dec(len(outcome.batch.rows))
            self.stats.last_commit_at = time.monotonic()
        publisher.close(1.0)
        wakeup.close()
        self._stop.set()
        for thread in (self._gauges, self._upkeep):
            if thread is not None:
                thread.join(timeout=10)
        self.live.join(timeout_s=10)
        if self.server is not None:
            self.server.close()
        self.readiness.close()
        self.engine.dispose()
        self.heartbeat.beat("stopped")
        peak_mb = peak_rss_mb()
        log.info(
            "relay: stopped; published %d, failed %d, dead %d in %d claims (%.0f rows/s); peak RSS %.0f MB",
            self.stats.published, self.stats.failed, self.stats.dead, self.stats.claims, self.stats.rate(), peak_mb,
        )
