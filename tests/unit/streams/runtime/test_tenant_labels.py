"""Tenant label values from records stay bounded: a cap on tenants with series, and idle tenants swept."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.runtime.metrics import StreamMetrics
from streams.runtime.tenant_labels import MAX_LABEL_CHARS, TenantLabels


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def samples(metric: Counter | Gauge) -> set[tuple[str, ...]]:
    return {tuple(s.labels.values()) for family in metric.collect() for s in family.samples
            if not s.name.endswith("_created")}


def test_tenants_over_the_cap_are_counted_as_other_and_long_ids_are_cut() -> None:
    labels = TenantLabels(idle_s=60, max_tenants=2)
    counter = Counter("c", "c", ["topic", "tenant"], registry=CollectorRegistry())
    for tenant in ("a", "b", "c", "d", "a", None):
        labels.child(counter, tenant, "t").inc()
    assert samples(counter) == {("t", "a"), ("t", "b"), ("t", "other"), ("t", "unknown")}
    assert labels.label("x" * 500) == "other"
    assert len(TenantLabels(60, 5).label("x" * 500)) == MAX_LABEL_CHARS


def test_idle_tenants_lose_every_series_and_free_their_place() -> None:
    clock = Clock()
    labels = TenantLabels(idle_s=60, max_tenants=2, clock=clock)
    registry = CollectorRegistry()
    counter = Counter("c", "c", ["reason", "tenant"], registry=registry)
    gauge = Gauge("g", "g", ["tenant"], registry=registry)
    labels.child(counter, "old", "decode").inc()
    labels.child(gauge, "old").set(1)
    clock.now = 30
    labels.child(counter, "busy", "decode").inc()
    clock.now = 61
    assert labels.sweep() == ["old"]
    assert samples(counter) == {("decode", "busy")}
    assert samples(gauge) == set()
    assert labels.label("new") == "new"  # the freed place is taken by a new tenant
    clock.now = 200
    assert sorted(labels.sweep()) == ["busy", "new"]


def test_stream_metrics_route_tenant_series_through_the_bound() -> None:
    metrics = StreamMetrics("unit", tenant_idle_s=60, max_tenants=1)
    metrics.tenant_child(metrics.tool_calls, "a", "echo", "ok").inc()
    metrics.tenant_child(metrics.tool_calls, "b", "echo", "ok").inc()
    assert samples(metrics.tool_calls) == {("echo", "ok", "a"), ("echo", "ok", "other")}
