"""The relay: moves committed outbox rows to Kafka, fairly across tenants, at least once.

One loop, one producer, up to `outbox_relay_pipeline_depth` claimed batches in flight, each
in its own open transaction that keeps its rows locked (FOR UPDATE SKIP LOCKED, so other
relays pass over them). A batch is marked (sent with partition/offset, or failed with a
backoff, or dead) and committed only once the broker has reported on every one of its rows.
A crash at any point aborts the open transactions: those rows are claimed again later.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import resource
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from types import FrameType

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from outbox.claim import any_due, claim, mark_failed, mark_sent, pending_by_tenant
from outbox.errors import RelayError
from outbox.metrics import Heartbeat, MetricsServer, RelayMetrics
from outbox.policy import Circuits, CircuitState, FairShare, PollPacer, backoff_delay, parse_tenant_map
from outbox.publisher import Batch, Publisher
from outbox.wakeup import Wakeup
from soma.clients import database_engine
from soma.settings import Settings

log = logging.getLogger("outbox.relay")

STOP_CHECK_S = 0.25  # longest a wait goes without looking at the stop flag
RETRY_BUCKET_S = 0.1  # retry times are remembered at this resolution (bounded memory)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


@dataclass
class RelayStats:
    published: int = 0
    failed: int = 0
    dead: int = 0
    claims: int = 0
    first_claim_at: float | None = None
    last_commit_at: float | None = None

    def rate(self) -> float:
        if self.first_claim_at is None or self.last_commit_at is None or self.last_commit_at <= self.first_claim_at:
            return 0.0
        return self.published / (self.last_commit_at - self.first_claim_at)


class Relay:
    """A long-running relay. `run()` returns after `stop()` (or SIGTERM), or when drained."""

    def __init__(self, settings: Settings, *, serve_metrics: bool = True, rng: random.Random | None = None) -> None:
        self.settings = settings
        depth = settings.outbox_relay_pipeline_depth
        self.engine: Engine = database_engine(settings, pool_size=depth + 2, max_overflow=2)
        self.fair = FairShare(
            settings.outbox_relay_batch_size,
            settings.outbox_relay_tenant_quota,
            parse_tenant_map(settings.outbox_relay_tenant_quotas, "outbox_relay_tenant_quotas"),
        )
        self.circuits = Circuits.from_settings(settings)
        self.pacer = PollPacer(settings.outbox_relay_poll_min_s, settings.outbox_relay_poll_max_s)
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.metrics = RelayMetrics()
        self.heartbeat = Heartbeat(stale_s=max(30.0, settings.outbox_relay_delivery_timeout_s * 2))
        self.stats = RelayStats()
        self.in_flight: deque[Batch] = deque()
        self.retry_times: set[float] = set()
        self._stop = threading.Event()
        self.wakeup: Wakeup | None = None
        self.publisher: Publisher | None = None
        self.server: MetricsServer | None = None
        self._serve_metrics = serve_metrics
        self._gauges: threading.Thread | None = None

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
        try:
            self.wakeup = Wakeup(self.engine)
        except SQLAlchemyError as exc:
            raise RelayError(f"outbox relay: cannot use the database: {_first_line(exc)}") from exc
        self.publisher = Publisher(self.settings)
        if self._serve_metrics:
            try:
                self.server = MetricsServer(
                    self.metrics, self.settings.outbox_relay_metrics_host, self.settings.outbox_relay_metrics_port,
                    self.heartbeat.report,
                )
            except OSError as exc:
                raise RelayError(
                    f"outbox relay: cannot serve metrics on {self.settings.outbox_relay_metrics_host}:"
                    f"{self.settings.outbox_relay_metrics_port} (SOMA_OUTBOX_RELAY_METRICS_PORT): {exc.strerror}"
                ) from exc
        self._gauges = threading.Thread(target=self._refresh_gauges, name="relay-gauges", daemon=True)
        self._gauges.start()

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
        wakeup, publisher = self._parts()
        depth = self.settings.outbox_relay_pipeline_depth
        while not self._stop.is_set():
            self.heartbeat.beat("busy" if self.in_flight else ("idle" if wakeup.idle else "polling"))
            self._finish_completed()
            if not self.in_flight:
                self._renew_producer_if_fatal()
            claimed = self._claim_and_send() if len(self.in_flight) < depth else 0
            if claimed:
                self.pacer.found_rows()
                wakeup.busy()
                publisher.poll(0)
                continue
            if self.in_flight:
                publisher.poll(0.005 if len(self.in_flight) < depth else 0.05)
                continue
            if drain:
                if self._nothing_due():
                    return
                self._sleep(self.pacer.next_wait())
                continue
            if not wakeup.idle:
                if not wakeup.try_idle():  # writers mid-transaction: more rows are coming, poll soon
                    self._sleep(self.pacer.next_wait())
                continue  # idle now: claim once more before waiting (a row may have just committed)
            self._wait_idle(wakeup)

    def _parts(self) -> tuple[Wakeup, Publisher]:
        if self.wakeup is None or self.publisher is None:
            raise RelayError("outbox relay: start() was not called")
        return self.wakeup, self.publisher

    def _wait_idle(self, wakeup: Wakeup) -> None:
        """Idle: wait for a writer's NOTIFY, a retry coming due, a circuit to half-open, or the timeout."""
        now = time.monotonic()
        deadline = now + self.settings.outbox_relay_idle_timeout_s
        for moment in (self._next_retry(now), self.circuits.next_change()):
            if moment is not None:
                deadline = min(deadline, moment)
        while not self._stop.is_set():
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

    def _renew_producer_if_fatal(self) -> None:
        _, publisher = self._parts()
        if publisher.renew_if_fatal():
            log.warning("relay: producer replaced after a fatal error")

    # --- claim, send, finish ---------------------------------------------------------------
    def _claim_and_send(self) -> int:
        _, publisher = self._parts()
        now = time.monotonic()
        limits = self.circuits.limits(now)
        plan = self.fair.plan(limits)
        try:
            conn = self.engine.connect()
        except SQLAlchemyError as exc:
            log.error("relay: database unavailable: %s", _first_line(exc))
            self.metrics.claims.labels("error").inc()
            self._sleep(self.settings.outbox_relay_poll_max_s)
            return 0
        try:
            conn.begin()
            rows = claim(conn, plan)
        except SQLAlchemyError as exc:
            log.error("relay: claim failed: %s", _first_line(exc))
            self.metrics.claims.labels("error").inc()
            with contextlib.suppress(SQLAlchemyError):
                conn.rollback()
            conn.close()
            self._sleep(self.settings.outbox_relay_poll_max_s)
            return 0
        self.fair.claimed((row.tenant_id for row in rows), len(rows))
        if not rows:
            conn.rollback()
            conn.close()
            self.metrics.claims.labels("empty").inc()
            return 0
        self.metrics.claims.labels("rows").inc()
        self.stats.claims += 1
        if self.stats.first_claim_at is None:
            self.stats.first_claim_at = time.monotonic()
        if limits:
            probed = Counter(row.tenant_id for row in rows if row.tenant_id in limits)
            for tenant, count in probed.items():
                self.circuits.get(tenant).claimed(count)
            self._export_circuits()
        batch = Batch(conn, rows)
        self.in_flight.append(batch)
        self.metrics.in_flight.inc(len(rows))
        publisher.send(batch, keep_going=lambda: not self._stop.is_set())
        return len(rows)

    def _finish_completed(self) -> None:
        while self.in_flight and self.in_flight[0].complete:
            self._finish(self.in_flight.popleft())
        # Batches complete out of order only when their rows went to slower partitions: finish those too.
        for batch in [b for b in self.in_flight if b.complete]:
            self.in_flight.remove(batch)
            self._finish(batch)

    def _finish(self, batch: Batch) -> None:
        """Record the broker's verdict on every reported row, then commit (releasing the claim)."""
        s = self.settings
        now_mono = time.monotonic()
        sent_ids: list[int] = []
        sent_parts: list[int] = []
        sent_offsets: list[int] = []
        sent_acked: list[float] = []
        fail_ids: list[int] = []
        fail_status: list[str] = []
        fail_errors: list[str] = []
        fail_delays: list[float] = []
        published: Counter[tuple[str, str]] = Counter()
        failed: Counter[tuple[str, str]] = Counter()
        dead: Counter[tuple[str, str]] = Counter()
        opened_before = {t for t, c in self.circuits.by_tenant.items() if c.state is CircuitState.OPEN}
        observe = self.metrics.latency.observe
        unreported: set[str] = set()
        for index, row in enumerate(batch.rows):
            if index >= batch.produced or batch.acked_at[index] == 0.0:
                unreported.add(row.tenant_id)  # never produced or no report (shutdown): released at commit
                continue
            error = batch.errors[index]
            circuit = self.circuits.get(row.tenant_id)
            if error is None:
                sent_ids.append(row.id)
                sent_parts.append(batch.partitions[index])
                sent_offsets.append(batch.offsets[index])
                sent_acked.append(batch.acked_at[index])
                observe(max(0.0, batch.acked_at[index] - row.created_epoch))
                published[(row.tenant_id, row.topic)] += 1
                circuit.success()
                continue
            attempts = row.attempts + 1
            is_dead = attempts >= s.outbox_relay_max_attempts
            delay = 0.0 if is_dead else backoff_delay(attempts, s.outbox_relay_retry_base_s, s.outbox_relay_retry_max_s,
                                                      self.rng)
            fail_ids.append(row.id)
            fail_status.append("dead" if is_dead else "failed")
            fail_errors.append(error)
            fail_delays.append(delay)
            (dead if is_dead else failed)[(row.tenant_id, row.topic)] += 1
            if not is_dead:
                self.retry_times.add(math.ceil((now_mono + delay) / RETRY_BUCKET_S) * RETRY_BUCKET_S)
            circuit.failure(now_mono)
        for tenant in unreported:
            self.circuits.get(tenant).released()
        try:
            mark_sent(batch.conn, sent_ids, sent_parts, sent_offsets, sent_acked)
            mark_failed(batch.conn, fail_ids, fail_status, fail_errors, fail_delays)
            batch.conn.commit()
        except SQLAlchemyError as exc:
            # The records are on the broker but not marked: they will be published again (at least once).
            log.error("relay: could not record %d delivery report(s): %s", len(batch.rows), _first_line(exc))
            with contextlib.suppress(SQLAlchemyError):
                batch.conn.rollback()
        finally:
            batch.conn.close()
            self.metrics.in_flight.dec(len(batch.rows))
        self.stats.last_commit_at = time.monotonic()
        self.stats.published += len(sent_ids)
        self.stats.failed += sum(failed.values())
        self.stats.dead += sum(dead.values())
        for (tenant, topic), n in published.items():
            self.metrics.published.labels(tenant, topic).inc(n)
        for (tenant, topic), n in failed.items():
            self.metrics.failed.labels(tenant, topic).inc(n)
        for (tenant, topic), n in dead.items():
            self.metrics.dead.labels(tenant, topic).inc(n)
        if fail_ids:
            log.warning("relay: %d delivery failure(s), e.g. %s", len(fail_ids), fail_errors[0])
        for tenant, circuit in self.circuits.by_tenant.items():
            if circuit.state is CircuitState.OPEN and tenant not in opened_before:
                self.metrics.circuit_opened.labels(tenant).inc()
                log.warning("relay: circuit of tenant %r opened after %d failure(s)", tenant, circuit.failures)
        self._export_circuits()

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
                log.warning("relay: pending gauges not refreshed: %s", _first_line(exc))
            self._stop.wait(self.settings.outbox_relay_gauge_interval_s)

    def _shutdown(self) -> None:
        self.heartbeat.beat("stopping")
        wakeup, publisher = self._parts()
        deadline = time.monotonic() + self.settings.outbox_relay_delivery_timeout_s + 5
        while self.in_flight and time.monotonic() < deadline:
            publisher.poll(0.05)
            self._finish_completed()
        while self.in_flight:  # reports still missing: record what came, release the rest
            self._finish(self.in_flight.popleft())
        publisher.close(1.0)
        wakeup.close()
        self._stop.set()
        if self._gauges is not None:
            self._gauges.join(timeout=10)
        if self.server is not None:
            self.server.close()
        self.engine.dispose()
        self.heartbeat.beat("stopped")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        log.info(
            "relay: stopped; published %d, failed %d, dead %d in %d claims (%.0f rows/s); peak RSS %.0f MB",
            self.stats.published, self.stats.failed, self.stats.dead, self.stats.claims, self.stats.rate(), peak_mb,
        )
