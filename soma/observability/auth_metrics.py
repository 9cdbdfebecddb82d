"""Authorization decision metrics, one pair for every process that authorizes something.

The admin API counts its token and tenant-scope checks (action: the route's operation, e.g.
``outbox_list``; result ``allowed`` / ``denied`` / ``unauthenticated``), the integrator its OPA
leader-change decisions (action ``leader_change``; result ``allow`` / ``veto`` / ``undefined`` /
``error`` / ``timeout`` / ``cached``). Both labels come from fixed sets given by the caller
(anything else is counted as ``other``), never from a token, a tenant or a request.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram

OTHER = "other"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class AuthMetrics:
    """`soma_auth_decisions_total{action,result}` and `soma_auth_duration_seconds{action,result}`."""

    def __init__(self, registry: CollectorRegistry, actions: Iterable[str], results: Iterable[str]) -> None:
        self.actions, self.results = frozenset(actions), frozenset(results)
        self.decisions = Counter(
            "soma_auth_decisions_total", "Authorization decisions by action and result", ["action", "result"],
            registry=registry,
        )
        self.duration = Histogram(
            "soma_auth_duration_seconds", "Time one authorization decision took", ["action", "result"],
            registry=registry, buckets=BUCKETS,
        )

    def record(self, action: str, result: str, seconds: float) -> None:
        labels = (action if action in self.actions else OTHER, result if result in self.results else OTHER)
        self.decisions.labels(*labels).inc()
        self.duration.labels(*labels).observe(max(0.0, seconds))
