"""The relay's gauges and counters, without a relay."""

from __future__ import annotations

from collections import Counter

from outbox.relay.claim import TenantBacklog
from outbox.relay.judge import Outcome
from outbox.relay.metrics import RelayMetrics


def _value(metrics: RelayMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"service": "relay", **labels})


def test_pending_gauges_fall_to_zero_for_tenants_with_nothing_left() -> None:
    metrics = RelayMetrics()
    metrics.set_pending([TenantBacklog("a", 5, 1.5, 0), TenantBacklog("b", 1, 0.2, 3)])
    metrics.set_pending([TenantBacklog("a", 2, 0.5, 0)])
    assert _value(metrics, "outbox_pending", tenant="b") == 0
    assert _value(metrics, "outbox_pending", tenant="a") == 2
    assert _value(metrics, "outbox_oldest_pending_age_seconds", tenant="b") == 0
    assert _value(metrics, "outbox_dead_rows", tenant="b") == 0
    assert metrics.backlog_tenants == {"a"}


def test_dead_rows_gauge_counts_each_tenants_dead_rows() -> None:
    metrics = RelayMetrics()
    metrics.set_pending([TenantBacklog("a", 0, 0.0, 1), TenantBacklog("b", 4, 2.0, 0)])
    assert _value(metrics, "outbox_dead_rows", tenant="a") == 1
    assert _value(metrics, "outbox_dead_rows", tenant="b") == 0
    assert metrics.backlog_tenants == {"a", "b"}


def test_forget_removes_every_series_of_a_tenant_and_only_its_own() -> None:
    metrics = RelayMetrics()
    metrics.set_pending([TenantBacklog("a", 1, 1.0, 0), TenantBacklog("b", 1, 1.0, 0)])
    outcome = Outcome(batch=None)  # type: ignore[arg-type]
    outcome.published = Counter({("a", "t1"): 2, ("a", "t2"): 1, ("b", "t1"): 1})
    outcome.failed = Counter({("a", "t1"): 1})
    metrics.record(outcome)
    metrics.circuit.labels("a").set(0)
    metrics.forget(["a"])
    assert metrics.tenants() == {"b"}
    for name, labels in (("outbox_pending", {"tenant": "a"}), ("outbox_dead_rows", {"tenant": "a"}),
                         ("outbox_published_total", {"tenant": "a", "topic": "t1"}),
                         ("outbox_failed_total", {"tenant": "a", "topic": "t1"}),
                         ("outbox_circuit_state", {"tenant": "a"})):
        assert _value(metrics, name, **labels) is None, name
    assert _value(metrics, "outbox_published_total", tenant="b", topic="t1") == 1
    metrics.forget(["never-seen"])  # no error
