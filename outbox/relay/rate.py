"""Per-tenant rate limits: a token bucket per tenant, spent by the rows the relay claims to produce.

A limited tenant's claim share is capped at its whole tokens (`RateLimits.limits`, merged with the
circuit limits into the claim plan), so rows over the rate are simply not claimed: they stay
pending, keep their attempts and their per-key order, and go out once tokens come back. Nothing
here touches the database or the broker, and the clock is given, so it is unit-tested directly.

While a limited tenant waits the relay sleeps: `next_refill` is the moment its bucket holds a
useful number of tokens again (a tenth of a second of its rate, at least one), which the relay
adds to its idle deadline, so a 1 row/s tenant costs ~1 wake-up a second, not a busy loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from soma.settings import RelaySettings

REFILL_STEP_S = 0.1  # a waiting tenant is looked at again once it has this much of its rate in tokens


@dataclass
class TokenBucket:
    """`rate` tokens a second, holding at most `capacity`; full when created."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst_s: float, now: float) -> TokenBucket:
        capacity = max(1.0, rate * burst_s)
        return cls(rate, capacity, capacity, now)

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

    def available(self, now: float) -> int:
        """Whole tokens now: the most rows the tenant may have claimed."""
        self.refill(now)
        return max(0, math.floor(self.tokens + 1e-9))

    def retune(self, rate: float, burst_s: float, now: float) -> None:
        """A new rate (a live change): the tokens held stay, within the new capacity."""
        self.refill(now)
        self.rate, self.capacity = rate, max(1.0, rate * burst_s)
        self.tokens = min(self.tokens, self.capacity)

    def spend(self, rows: int, now: float) -> None:
        """Take `rows` tokens (negative: give back rows claimed but not produced)."""
        self.refill(now)
        self.tokens = min(self.capacity, self.tokens - rows)

    def ready_at(self, now: float) -> float:
        """When the bucket holds a step's worth of tokens (now if it already does)."""
        self.refill(now)
        step = min(self.capacity, max(1.0, self.rate * REFILL_STEP_S))
        return now if self.tokens >= step else now + (step - self.tokens) / self.rate


class LiveRates(Protocol):
    """The live `RELAY_TENANT_RATE` values (`outbox.relay.live.LiveMirror`)."""

    @property
    def tenant_rates(self) -> Mapping[str, float]: ...  # tenant-scoped values of 0 or more
    @property
    def global_rate(self) -> float: ...  # below 0: none


class _NoLive:
    tenant_rates: Mapping[str, float] = {}
    global_rate = -1.0


class RateLimits:
    """Every limited tenant's bucket; tenants held back by their rate (`waiting`) and the moment to look again.

    A tenant's rate, most specific first: its live tenant-scoped `RELAY_TENANT_RATE`, its static
    override in `rates`, the live global value, the static `default` (0 or less: unlimited). A live
    change retunes the tenant's bucket at its next claim. Buckets are created on a tenant's first
    claim; until then the claim plan's default limit (a full bucket) applies, so even a tenant never
    seen before gets no more than its burst.
    """

    def __init__(
        self, default: float, rates: Mapping[str, float], burst_s: float, live: LiveRates | None = None
    ) -> None:
        self.static_default, self.rates, self.burst_s = default, dict(rates), burst_s
        self.live: LiveRates = live or _NoLive()
        self.buckets: dict[str, TokenBucket] = {}
        self.waiting: set[str] = set()  # tenants whose last claim stopped at their rate (more rows may wait)

    @classmethod
    def from_settings(cls, relay: RelaySettings, live: LiveRates | None = None) -> RateLimits:
        return cls(relay.tenant_rate, relay.tenant_rates, relay.tenant_rate_burst_s, live)

    @property
    def default(self) -> float:
        """The rate of a tenant without an override: the live global value, else the static default."""
        live = self.live.global_rate
        return live if live >= 0 else self.static_default

    def rate_of(self, tenant: str) -> float:
        live = self.live.tenant_rates.get(tenant)
        if live is not None:
            return live
        return self.rates.get(tenant, self.default)

    def default_limit(self) -> int:
        """The claim limit of a tenant without a bucket yet: its full burst with a default rate, else none (-1)."""
        default = self.default
        return math.floor(max(1.0, default * self.burst_s)) if default > 0 else -1

    def _bucket(self, tenant: str, now: float) -> TokenBucket | None:
        rate = self.rate_of(tenant)
        bucket = self.buckets.get(tenant)
        if rate <= 0:
            if bucket is not None:  # made unlimited (live): nothing to wait for
                del self.buckets[tenant]
                self.waiting.discard(tenant)
            return None
        if bucket is None:
            bucket = self.buckets[tenant] = TokenBucket.full(rate, self.burst_s, now)
        elif bucket.rate != rate:
            bucket.retune(rate, self.burst_s, now)
        return bucket

    def limits(self, now: float) -> dict[str, int]:
        """Rows each limited tenant may have claimed now: those with a bucket or an override. A tenant waiting
        for tokens gets none until it has a step's worth (`TokenBucket.ready_at`), then all it has."""
        overrides = {**self.rates, **self.live.tenant_rates}
        tenants = set(self.buckets) | {t for t, rate in overrides.items() if rate > 0}
        if self.default > 0:  # an unlimited override beats the default: -1 (none) in the plan
            tenants |= {t for t, rate in overrides.items() if rate <= 0}
        result = {}
        for tenant in tenants:
            bucket = self._bucket(tenant, now)
            if bucket is None:
                result[tenant] = -1
            elif tenant in self.waiting and bucket.ready_at(now) > now:
                result[tenant] = 0  # a waiting tenant goes on in steps: not one claim per token
            else:
                result[tenant] = bucket.available(now)
        return result

    def claimed(self, counts: Mapping[str, int], limits: Mapping[str, int], now: float) -> set[str]:
        """Spend the tokens of the rows claimed per tenant (`limits`: the plan's rate limits). Returns the
        tenants that reached their limit: they may have more rows due, and wait for tokens."""
        capped = set()
        for tenant, rows in counts.items():
            bucket = self._bucket(tenant, now)
            if bucket is None:
                continue
            bucket.spend(rows, now)
            limit = limits.get(tenant, self.default_limit())
            if 0 <= limit <= rows:
                capped.add(tenant)
        # A limited tenant that got fewer rows than it could have had nothing more due; one at its limit waits.
        for tenant, limit in limits.items():
            if limit > 0 and counts.get(tenant, 0) < limit:
                self.waiting.discard(tenant)
        self.waiting |= capped
        return capped

    def released(self, counts: Mapping[str, int], now: float) -> None:
        """Rows claimed but not produced (held back behind an older row of their key): their tokens back."""
        for tenant, rows in counts.items():
            bucket = self.buckets.get(tenant)
            if bucket is not None:
                bucket.spend(-rows, now)

    def after_claim(
        self, counts: Mapping[str, int], held: Mapping[str, int], limits: Mapping[str, int], visited_all: bool,
        now: float,
    ) -> tuple[set[str], float | None]:
        """A claim's rows per tenant (`held`: those not produced, their tokens come back), with the claim's rate
        `limits`. Returns the tenants stopped at their rate, and when the next claim should come (None: at
        once): if every row came from such tenants and the claim left no tenant unvisited, only rate-held rows
        are due, and the relay waits for tokens (or a NOTIFY) instead of claiming a few rows at a time."""
        capped = self.claimed(counts, limits, now)
        if held:
            self.released(held, now)
        if counts and visited_all and capped >= set(counts):
            return capped, self.next_refill(now)
        return capped, None

    def next_refill(self, now: float) -> float | None:
        """When a waiting tenant has tokens again (the relay looks then, even without a NOTIFY)."""
        times = [self.buckets[t].ready_at(now) for t in self.waiting if t in self.buckets]
        return min(times, default=None)

    def forget(self, tenants: Iterable[str]) -> None:
        """Drop idle tenants' buckets (a full bucket is what a new one starts with, so nothing is lost)."""
        for tenant in tenants:
            self.buckets.pop(tenant, None)
            self.waiting.discard(tenant)


def merge_limits(*limits: Mapping[str, int]) -> dict[str, int]:
    """Per tenant, the smallest of its limits (-1: none)."""
    merged: dict[str, int] = {}
    for mapping in limits:
        for tenant, limit in mapping.items():
            held = merged.get(tenant, -1)
            merged[tenant] = limit if held < 0 else (held if limit < 0 else min(held, limit))
    return merged
