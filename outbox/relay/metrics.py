"""The relay's Prometheus metrics, its own totals, its per-batch log lines, and the small HTTP server for /metrics,
/healthz and /readyz."""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app

from soma.observability.logs import log_context
from soma.observability.metrics import ServiceRegistry

if TYPE_CHECKING:
    from outbox.relay.claim import TenantBacklog
    from outbox.relay.judge import Outcome
    from outbox.relay.publisher import Batch

log = logging.getLogger("outbox.relay")

# Commit-to-acknowledgement latency: fine buckets below 100 ms, where the target lives.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class RelayMetrics:
    """Every metric the relay exports, in a registry of its own (several relays may share a process)."""

    def __init__(self) -> None:
        self.registry = ServiceRegistry("relay")
        r = self.registry
        self.pending = Gauge(
            "outbox_pending", "Rows not yet published (pending or waiting for a retry)", ["tenant"], registry=r
        )
        self.oldest_age = Gauge(
            "outbox_oldest_pending_age_seconds", "Age of the oldest unpublished row", ["tenant"], registry=r
        )
        self.published = Counter(
            "outbox_published", "Rows the broker acknowledged", ["tenant", "topic"], registry=r
        )
        self.failed = Counter(
            "outbox_failed", "Failed delivery attempts (the row is retried later)", ["tenant", "topic"], registry=r
        )
        self.dead = Counter(
            "outbox_dead", "Rows parked as dead after their last allowed attempt", ["tenant", "topic"], registry=r
        )
        self.latency = Histogram(
            "outbox_publish_latency_seconds", "From the row's insert to the broker's acknowledgement",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.circuit = Gauge(
            "outbox_circuit_state", "Circuit of a tenant: 0 closed, 1 half-open, 2 open", ["tenant"], registry=r
        )
        self.circuit_opened = Counter(
            "outbox_circuit_opened", "Times a tenant's circuit opened", ["tenant"], registry=r
        )
        self.dead_rows = Gauge(
            "outbox_dead_rows", "Rows parked as dead (they wait for an operator: replay or discard)", ["tenant"],
            registry=r,
        )
        self.rate_limited = Counter(
            "outbox_rate_limited", "Claims that stopped at a tenant's rate limit (its further rows wait)", ["tenant"],
            registry=r,
        )
        self.rate_limited_rows = Gauge(
            "outbox_rate_limited_rows", "Rows not yet published of a tenant its rate limit holds back (last recount)",
            ["tenant"], registry=r,
        )
        self.sleep_requests = Counter(
            "outbox_circuit_sleep_requests", "Sleep requests the relay produced for circuits opening (light) and"
            " closing (awake), by result (sent, failed)", ["to_state", "result"], registry=r,
        )
        self.claims = Counter("outbox_claims", "Claims the relay ran, by outcome", ["outcome"], registry=r)
        self.in_flight = Gauge("outbox_in_flight_rows", "Claimed rows awaiting the broker", registry=r)
        # The table itself (outbox/relay/upkeep.py, every SOMA_OUTBOX_RELAY_TABLE_METRICS_INTERVAL_S).
        self.table_rows = Gauge(
            "outbox_table_rows", "Rows of outbox_events by status (sent: the planner's estimate)", ["status"],
            registry=r,
        )
        self.table_bytes = Gauge(
            "outbox_table_bytes", "Disk size of outbox_events with its indexes and TOAST", registry=r
        )
        self.pruned = Counter(
            "outbox_pruned_rows", "Rows deleted by the relay's retention prune", ["status"], registry=r
        )
        self.prune_success = Gauge(
            "outbox_prune_last_success_timestamp_seconds", "When the relay's last prune run ended without error",
            registry=r,
        )
        self._lock = threading.Lock()  # the gauge thread and the loop both touch the per-tenant series
        self._seen_tenants: set[str] = set()  # tenants with backlog gauges
        self._topics: dict[str, set[str]] = {}  # tenant -> topics of its (tenant, topic) counters
        self.backlog_tenants: frozenset[str] = frozenset()  # tenants with pending or dead rows, last recount
        self.rate_waiting: frozenset[str] = frozenset()  # tenants waiting for their rate's tokens (set by the loop)

    def set_pending(self, rows: Iterable[TenantBacklog]) -> None:
        """Replace the per-tenant gauges; tenants with nothing left read 0 (until evicted as idle)."""
        current = set()
        busy = set()
        with self._lock:
            for row in rows:
                current.add(row.tenant)
                self.pending.labels(row.tenant).set(row.pending)
                self.oldest_age.labels(row.tenant).set(row.oldest_age_s)
                self.dead_rows.labels(row.tenant).set(row.dead)
                self.rate_limited_rows.labels(row.tenant).set(row.pending if row.tenant in self.rate_waiting else 0)
                busy.add(row.tenant)
            for tenant in self._seen_tenants - current:
                for gauge in (self.pending, self.oldest_age, self.dead_rows, self.rate_limited_rows):
                    gauge.labels(tenant).set(0)
            self._seen_tenants |= current
        self.backlog_tenants = frozenset(busy)

    def forget(self, tenants: Iterable[str]) -> None:
        """Remove every series of these tenants (idle ones: see `policy.idle_tenants`)."""
        with self._lock:
            for tenant in tenants:
                if tenant in self._seen_tenants:
                    self._seen_tenants.discard(tenant)
                    for gauge in (self.pending, self.oldest_age, self.dead_rows, self.rate_limited_rows):
                        _remove(gauge, tenant)
                for topic in self._topics.pop(tenant, set()):
                    for counter in (self.published, self.failed, self.dead):
                        _remove(counter, tenant, topic)
                for metric in (self.circuit, self.circuit_opened, self.rate_limited):
                    _remove(metric, tenant)

    def tenants(self) -> set[str]:
        """Tenants with at least one series (for tests and the documented bound)."""
        with self._lock:
            return self._seen_tenants | set(self._topics)

    def sleep_request(self, to_state: str, result: str) -> None:
        self.sleep_requests.labels(to_state, result).inc()

    def rate_capped(self, capped: Iterable[str], waiting: Iterable[str]) -> None:
        """A claim stopped at these tenants' rate limits; `waiting`: every tenant now waiting for tokens."""
        with self._lock:
            for tenant in capped:
                self.rate_limited.labels(tenant).inc()
        self.rate_waiting = frozenset(waiting)

    def record(self, outcome: Outcome) -> None:
        """Count a judged batch: latencies, and rows published, failed and dead per tenant and topic."""
        for latency in outcome.latencies:
            self.latency.observe(latency)
        for counter, counts in ((self.published, outcome.published), (self.failed, outcome.failed),
                                (self.dead, outcome.dead)):
            for (tenant, topic), n in counts.items():
                with self._lock:
                    self._topics.setdefault(tenant, set()).add(topic)
                    counter.labels(tenant, topic).inc(n)


def log_outcome(batch: Batch, outcome: Outcome) -> None:
    """Per tenant and topic: a warning with the first error of its failed rows; published counts at DEBUG."""
    first: dict[tuple[str, str], str] = {}
    for row, error in zip(batch.rows, batch.errors, strict=True):
        if error is not None:
            first.setdefault((row.tenant_id, row.topic), error)
    for (tenant, topic), error in first.items():
        failures = outcome.failed[(tenant, topic)] + outcome.dead[(tenant, topic)]
        with log_context(tenant=tenant):
            log.warning("relay: %d delivery failure(s) to %s, e.g. %s", failures, topic, error)
    if log.isEnabledFor(logging.DEBUG):
        for (tenant, topic), n in outcome.published.items():
            with log_context(tenant=tenant):
                log.debug("relay: published %d row(s) to %s", n, topic)


def _remove(metric: Gauge | Counter, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never had this series
        metric.remove(*labels)


@dataclass
class RelayStats:
    """What one relay did, for its last log line (and `--drain` callers such as the bench)."""

    published: int = 0
    failed: int = 0
    dead: int = 0
    claims: int = 0
    first_claim_at: float | None = None
    last_commit_at: float | None = None

    def record(self, outcome: Outcome) -> None:
        self.published += len(outcome.sent_ids)
        self.failed += sum(outcome.failed.values())
        self.dead += sum(outcome.dead.values())

    def rate(self) -> float:
        if self.first_claim_at is None or self.last_commit_at is None or self.last_commit_at <= self.first_claim_at:
            return 0.0
        return self.published / (self.last_commit_at - self.first_claim_at)


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (ru_maxrss would include the parent's RSS before exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class MetricsServer:
    """Serves /metrics (Prometheus text), /healthz (200 while the relay loop is alive) and /readyz
    (200 when `ready()` says so: the loop, Kafka and PostgreSQL) on a thread."""

    def __init__(
        self, metrics: RelayMetrics, host: str, port: int, health: Callable[[], dict[str, Any]],
        ready: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        metrics_app = make_wsgi_app(metrics.registry)
        probes = {"/healthz": (health, "ok"), "/readyz": (ready or health, "ready" if ready else "ok")}

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            probe = probes.get(str(environ.get("PATH_INFO")))
            if probe is not None:
                report = probe[0]()
                status = "200 OK" if report.get(probe[1]) else "503 Service Unavailable"
                start_response(status, [("Content-Type", "application/json")])
                return [json.dumps(report).encode()]
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]

        self._server = make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="relay-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Heartbeat:
    """The relay loop touches it every turn; /healthz reports stale after `stale_s`."""

    def __init__(self, stale_s: float) -> None:
        self.stale_s, self.last = stale_s, time.monotonic()
        self.state = "starting"

    def beat(self, state: str) -> None:
        self.last, self.state = time.monotonic(), state

    def report(self) -> dict[str, Any]:
        age = time.monotonic() - self.last
        return {"ok": age < self.stale_s and self.state != "stopped", "state": self.state, "loop_age_s": round(age, 3)}

    def check(self) -> tuple[bool, str]:
        """The loop as a readiness check: ok and a one-line detail."""
        report = self.report()
        return bool(report["ok"]), f"loop {report['state']}, last turn {report['loop_age_s']}s ago"
