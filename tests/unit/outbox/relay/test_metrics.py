"""The relay's gauges and counters, without a relay."""

from __future__ import annotations

from outbox.relay.metrics import RelayMetrics


def test_pending_gauges_fall_to_zero_for_tenants_with_nothing_left() -> None:
    metrics = RelayMetrics()
    metrics.set_pending([("a", 5, 1.5), ("b", 1, 0.2)])
    metrics.set_pending([("a", 2, 0.5)])
    assert metrics.registry.get_sample_value("outbox_pending", {"service": "relay", "tenant": "b"}) == 0
    assert metrics.registry.get_sample_value("outbox_pending", {"service": "relay", "tenant": "a"}) == 2
    age = metrics.registry.get_sample_value("outbox_oldest_pending_age_seconds", {"service": "relay", "tenant": "b"})
    assert age == 0
