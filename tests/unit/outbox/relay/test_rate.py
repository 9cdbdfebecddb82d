"""Per-tenant rate limits, on a fake clock: the token bucket, the limits a claim plan gets, waiting tenants."""

from __future__ import annotations

import pytest

from outbox.relay.policy import FairShare
from outbox.relay.rate import RateLimits, TokenBucket, merge_limits
from soma.errors import SettingsError
from soma.settings import load_settings


def test_bucket_starts_full_refills_at_its_rate_and_never_overflows() -> None:
    bucket = TokenBucket.full(rate=50, burst_s=1.0, now=100.0)
    assert bucket.capacity == 50
    assert bucket.available(100.0) == 50
    bucket.spend(50, 100.0)
    assert bucket.available(100.0) == 0
    assert bucket.available(100.1) == 5  # 0.1 s at 50/s
    assert bucket.available(100.5) == 25
    assert bucket.available(1000.0) == 50  # capped at its burst


def test_bucket_of_a_slow_rate_holds_one_row() -> None:
    bucket = TokenBucket.full(rate=0.5, burst_s=1.0, now=0.0)
    assert bucket.capacity == 1
    bucket.spend(1, 0.0)
    assert bucket.available(1.9) == 0
    assert bucket.available(2.0) == 1
    assert bucket.ready_at(2.0) == 2.0


def test_bucket_ready_at_is_a_step_of_its_rate_ahead() -> None:
    bucket = TokenBucket.full(rate=50, burst_s=1.0, now=0.0)
    bucket.spend(50, 0.0)
    assert bucket.ready_at(0.0) == pytest.approx(0.1)  # 5 tokens = 0.1 s of 50/s
    assert bucket.ready_at(0.05) == pytest.approx(0.1)
    assert bucket.ready_at(0.2) == 0.2


def test_given_back_tokens_never_exceed_the_capacity() -> None:
    bucket = TokenBucket.full(rate=10, burst_s=1.0, now=0.0)
    bucket.spend(-5, 0.0)
    assert bucket.available(0.0) == 10


def test_unlimited_by_default_nothing_in_the_plan() -> None:
    rates = RateLimits(0, {}, 1.0)
    assert rates.limits(0.0) == {}
    assert rates.default_limit() == -1
    assert rates.claimed({"acme": 5000}, {}, 0.0) == set()
    assert rates.next_refill(0.0) is None


def test_a_default_rate_caps_tenants_never_seen_at_their_burst() -> None:
    rates = RateLimits(20, {}, 2.0)
    assert rates.default_limit() == 40
    assert rates.limits(0.0) == {}  # no bucket yet: the plan's default limit applies
    capped = rates.claimed({"acme": 40}, {}, 0.0)
    assert capped == {"acme"}
    assert rates.limits(0.0) == {"acme": 0}
    assert rates.waiting == {"acme"}


def test_overrides_beat_the_default_and_zero_means_unlimited() -> None:
    rates = RateLimits(20, {"acme": 100, "globex": 0}, 1.0)
    assert rates.rate_of("acme") == 100
    assert rates.rate_of("globex") == 0
    assert rates.rate_of("initech") == 20
    assert rates.limits(0.0) == {"acme": 100, "globex": -1}  # globex: no limit, not the default


def test_a_waiting_tenant_gets_tokens_in_steps_then_stops_waiting_when_it_runs_out_of_rows() -> None:
    rates = RateLimits(0, {"acme": 50}, 1.0)
    limits = rates.limits(0.0)
    assert rates.claimed({"acme": 50}, limits, 0.0) == {"acme"}
    assert rates.next_refill(0.0) == pytest.approx(0.1)
    assert rates.limits(0.02) == {"acme": 0}  # one token, not yet a step: the relay does not claim per token
    limits = rates.limits(0.1)
    assert limits == {"acme": 5}
    assert rates.claimed({"acme": 5}, limits, 0.1) == {"acme"}  # still at its limit: more rows may wait
    limits = rates.limits(0.3)
    assert limits == {"acme": 10}
    assert rates.claimed({"acme": 3}, limits, 0.3) == set()  # fewer rows than it could have: nothing waits
    assert rates.waiting == set()
    assert rates.next_refill(0.3) is None


def test_held_back_rows_give_their_tokens_back() -> None:
    rates = RateLimits(0, {"acme": 10}, 1.0)
    rates.claimed({"acme": 10}, rates.limits(0.0), 0.0)
    rates.released({"acme": 4}, 0.0)
    rates.waiting.clear()
    assert rates.limits(0.0) == {"acme": 4}


def test_the_long_run_rate_is_the_limit_on_a_fake_clock() -> None:
    """A tenant with an endless backlog, claimed every 10 ms for 60 s: burst + rate x time rows, no more."""
    rates = RateLimits(0, {"acme": 50}, 1.0)
    total = 0
    now = 0.0
    while now < 60.0:
        limits = rates.limits(now)
        rows = limits["acme"]
        rates.claimed({"acme": rows}, limits, now)
        total += rows
        now = round(now + 0.01, 6)
    assert 50 + 50 * 59.9 <= total <= 50 + 50 * 60


def test_forget_drops_buckets_and_waiting() -> None:
    rates = RateLimits(5, {}, 1.0)
    rates.claimed({"acme": 5}, {}, 0.0)
    rates.forget({"acme"})
    assert rates.buckets == {}
    assert rates.waiting == set()


def test_merge_limits_takes_the_smallest_and_none_is_minus_one() -> None:
    assert merge_limits({"a": 1, "b": -1}, {"a": 30, "b": 7, "c": -1}) == {"a": 1, "b": 7, "c": -1}
    assert merge_limits({"a": 0}, {"a": 100}) == {"a": 0}


def test_the_plan_carries_rate_limits_and_the_default_limit() -> None:
    fair = FairShare(batch_size=1000, quota=100, quotas={"big": 300})
    plan = fair.plan(merge_limits({"bad": 0}, {"acme": 7, "bad": 50}), default_limit=20)
    assert dict(zip(plan.tenants, plan.limits, strict=True)) == {"acme": 7, "bad": 0, "big": -1}
    assert plan.default_limit == 20


def test_rate_settings_parse_and_refuse_bad_values() -> None:
    relay = load_settings(outbox_relay_tenant_rate=10, outbox_relay_tenant_rates="acme=100,globex=0.5").relay
    assert relay.tenant_rate == 10
    assert relay.tenant_rates == {"acme": 100, "globex": 0.5}
    assert RateLimits.from_settings(relay).rate_of("globex") == 0.5
    with pytest.raises(SettingsError, match="SOMA_OUTBOX_RELAY_TENANT_RATES: expected tenant=number, got 'acme=-1'"):
        load_settings(outbox_relay_tenant_rates="acme=-1")
    with pytest.raises(SettingsError, match="SOMA_OUTBOX_RELAY_TENANT_RATE"):
        load_settings(outbox_relay_tenant_rate=-5)
    for hostile in ("acme=1e309", "acme=nan", "acme=2000000"):
        with pytest.raises(SettingsError, match="SOMA_OUTBOX_RELAY_TENANT_RATES: expected tenant=rows_per_s with 0 <="):
            load_settings(outbox_relay_tenant_rates=hostile)


def test_a_huge_bucket_is_claimed_at_most_a_batch() -> None:
    """1,000,000 rows/s x 3600 s of burst: the plan's limits stay within a batch (and PostgreSQL's int)."""
    rates = RateLimits(1_000_000, {"acme": 1_000_000}, 3600.0)
    fair = FairShare(batch_size=1000, quota=100, quotas={})
    plan = fair.plan(rates.limits(0.0), rates.default_limit())
    assert plan.limits == (1000,)
    assert plan.default_limit == 1000


class Live:
    """The live RELAY_TENANT_RATE values as `LiveMirror` keeps them."""

    def __init__(self, tenant_rates: dict[str, float] | None = None, global_rate: float = -1.0) -> None:
        self.tenant_rates = tenant_rates or {}
        self.global_rate = global_rate


def test_live_rates_most_specific_first() -> None:
    live = Live({"acme": 5, "free": 0}, global_rate=30)
    rates = RateLimits(10, {"acme": 100, "globex": 50, "free": 40}, 1.0, live)
    assert rates.rate_of("acme") == 5  # live tenant-scoped beats the static override
    assert rates.rate_of("free") == 0  # ... also when it lifts the limit
    assert rates.rate_of("globex") == 50  # static override beats the live global value
    assert rates.rate_of("initech") == 30  # live global beats the static default
    assert rates.default_limit() == 30
    live.global_rate = -1  # reset: the static default again
    assert rates.rate_of("initech") == 10
    assert rates.limits(0.0) == {"acme": 5, "globex": 50, "free": -1}


def test_a_live_change_retunes_the_bucket_and_unlimited_drops_it() -> None:
    live = Live()
    rates = RateLimits(0, {}, 1.0, live)
    assert rates.limits(0.0) == {}
    live.tenant_rates = {"acme": 100}
    assert rates.limits(0.0) == {"acme": 100}
    rates.claimed({"acme": 100}, {"acme": 100}, 0.0)
    live.tenant_rates = {"acme": 10}  # slowed: the bucket keeps what it earned (0.05 s at 100/s), within 10
    assert rates.limits(0.05) == {"acme": 5}
    assert rates.limits(1.0) == {"acme": 10}
    assert rates.buckets["acme"].capacity == 10
    live.tenant_rates = {"acme": 0}  # lifted: no bucket, nothing waits
    assert rates.limits(0.5) == {"acme": -1}  # -1: no limit in the plan
    assert rates.limits(0.6) == {}
    rates.claimed({"acme": 7000}, {}, 0.6)
    assert rates.buckets == {}
    assert rates.waiting == set()


def test_the_mirror_keeps_the_live_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from outbox.relay.live import LiveMirror
    from soma.live_config import checksum

    mirror = LiveMirror(load_settings(), threading.Event())
    assert (mirror.tenant_rates, mirror.global_rate) == ({}, -1.0)

    def apply(value: object, tenant: str | None, version: int) -> None:
        update = {"name": "RELAY_TENANT_RATE", "value": value, "scope_tenant": tenant, "version": version,
                  "checksum": checksum(value)}
        decision = mirror.live.apply(update)
        if decision.accepted:
            mirror._rates()

    apply(20.0, "acme", 1)
    apply(-1.0, "globex", 1)  # below 0 for a tenant: the static settings decide, not an override
    apply(300.0, None, 1)
    apply(-5.0, "initech", 1)  # refused: below -1
    assert mirror.tenant_rates == {"acme": 20.0}
    assert mirror.global_rate == 300.0
    apply(None, "acme", 2)  # reset
    assert mirror.tenant_rates == {}
