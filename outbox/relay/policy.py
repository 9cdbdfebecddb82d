"""The relay's decisions, as plain functions and classes: backoff, circuits, fair shares, poll pacing,
forgetting idle tenants.

Nothing here touches the database or the broker, so all of it is unit-tested directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol, TypeVar

from soma.settings import RelaySettings


class CircuitState(IntEnum):
    """Exported as the value of the `outbox_circuit_state` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass
class Circuit:
    """One tenant's breaker: opens after `threshold` consecutive failures, probes after `reset_s`."""

    threshold: int
    reset_s: float
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False  # a half-open probe row is in flight

    def allowance(self, now: float) -> int | None:
        """Rows this tenant may have claimed now: None = its normal share, 0 = none, 1 = one probe."""
        if self.state is CircuitState.OPEN and now - self.opened_at >= self.reset_s:
            self.state = CircuitState.HALF_OPEN
        if self.state is CircuitState.CLOSED:
            return None
        if self.state is CircuitState.OPEN or self.probing:
            return 0
        return 1

    def claimed(self, rows: int) -> None:
        if self.state is CircuitState.HALF_OPEN and rows:
            self.probing = True

    def success(self) -> None:
        self.state, self.failures, self.probing = CircuitState.CLOSED, 0, False

    def failure(self, now: float) -> None:
        self.failures += 1
        self.probing = False
        if self.state is CircuitState.HALF_OPEN or (
            self.state is CircuitState.CLOSED and self.failures >= self.threshold
        ):
            self.state, self.opened_at = CircuitState.OPEN, now

    def released(self) -> None:
        """The probe row went back unsent (shutdown): let another probe go."""
        self.probing = False

    def reopens_at(self) -> float | None:
        return self.opened_at + self.reset_s if self.state is CircuitState.OPEN else None


@dataclass
class Circuits:
    """Every tenant's circuit, created on first use with that tenant's configured thresholds."""

    threshold: int
    reset_s: float
    thresholds: Mapping[str, float] = field(default_factory=dict)
    resets: Mapping[str, float] = field(default_factory=dict)
    by_tenant: dict[str, Circuit] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, relay: RelaySettings) -> Circuits:
        return cls(
            threshold=relay.circuit_failures,
            reset_s=relay.circuit_reset_s,
            thresholds=relay.circuit_failures_by_tenant,
            resets=relay.circuit_reset_s_by_tenant,
        )

    def get(self, tenant: str) -> Circuit:
        circuit = self.by_tenant.get(tenant)
        if circuit is None:
            threshold = max(1, int(self.thresholds.get(tenant, self.threshold)))
            circuit = Circuit(threshold, self.resets.get(tenant, self.reset_s))
            self.by_tenant[tenant] = circuit
        return circuit

    def limits(self, now: float) -> dict[str, int]:
        """Tenants whose circuit is not closed, with the rows they may have claimed now (0 or 1)."""
        limits = {}
        for tenant, circuit in self.by_tenant.items():
            allowance = circuit.allowance(now)
            if allowance is not None:
                limits[tenant] = allowance
        return limits

    def forget(self, tenants: Iterable[str]) -> None:
        """Drop the circuits of these tenants (closed ones only: an open circuit keeps its state)."""
        for tenant in tenants:
            circuit = self.by_tenant.get(tenant)
            if circuit is not None and circuit.state is CircuitState.CLOSED:
                del self.by_tenant[tenant]

    def next_change(self) -> float | None:
        """The earliest moment an open circuit turns half-open (when the relay should look again)."""
        times = [t for c in self.by_tenant.values() if (t := c.reopens_at()) is not None]
        return min(times, default=None)


@dataclass(frozen=True)
class ClaimPlan:
    """What one claim asks of the database (see `outbox.relay.claim.CLAIM_SQL`).

    Up to `max_tenants` tenants with due rows are visited in round-robin order, starting after
    the cursor `after` and wrapping around. Each gets `quota` rows per round (its override or
    the default) and as many rounds as the batch has room for if every visited tenant filled
    its quota; rows are taken round by round, tenants in visit order, up to `batch_size`.
    A tenant with a limit gets at most that many rows: its circuit's (0: skipped, 1: one probe)
    or its rate's (its whole tokens); a tenant not listed gets `default_limit` (-1: none).
    """

    after: str
    batch_size: int
    quota: int
    max_tenants: int
    tenants: tuple[str, ...]  # tenants with an override...
    quotas: tuple[int, ...]  # ...their quota per round...
    limits: tuple[int, ...]  # ...and their limit (-1: none)
    default_limit: int = -1  # the limit of every other tenant (a default rate's full bucket; -1: none)


class FairShare:
    """Round-robin over tenants with per-tenant quotas; remembers where the last claim stopped.

    A tenant's share of a claim never depends on how many rows it has waiting, so 1,000,000
    rows of one tenant cannot push another tenant's 10 behind them; a tenant alone still
    fills whole batches (its share grows with the rounds the batch has room for).
    """

    def __init__(self, batch_size: int, quota: int, quotas: Mapping[str, float]) -> None:
        self.batch_size, self.quota = batch_size, quota
        self.quotas = {tenant: max(1, int(q)) for tenant, q in quotas.items()}
        self.cursor = ""
        # Enough tenants to fill a batch with their quotas (more only adds rows locked but not sent).
        self.max_tenants = max(1, -(-batch_size // quota))

    def quota_of(self, tenant: str) -> int:
        return self.quotas.get(tenant, self.quota)

    def plan(self, limits: Mapping[str, int], default_limit: int = -1) -> ClaimPlan:
        overrides = {t: (q, -1) for t, q in self.quotas.items()}
        for tenant, limit in limits.items():  # no claim takes more than a batch (and limits stay in int range)
            overrides[tenant] = (self.quota_of(tenant), min(limit, self.batch_size))
        names = tuple(sorted(overrides))
        return ClaimPlan(
            after=self.cursor,
            batch_size=self.batch_size,
            quota=self.quota,
            max_tenants=self.max_tenants,
            tenants=names,
            quotas=tuple(overrides[t][0] for t in names),
            limits=tuple(overrides[t][1] for t in names),
            default_limit=min(default_limit, self.batch_size),
        )

    def claimed(self, last_served: str | None, rows: int, visited: int, last_visited: str | None) -> None:
        """Move the cursor for the next claim.

        A full batch stops mid-round: the next claim starts after the last tenant served. A
        claim that visited as many tenants as it may starts after the last one visited (so the
        tenants beyond are next, even if this claim found nothing to send). Otherwise every
        tenant with due rows had its share and the next claim starts from the beginning.
        """
        if rows >= self.batch_size and last_served is not None:
            self.cursor = last_served
        elif visited >= self.max_tenants and last_visited is not None:
            self.cursor = last_visited
        else:
            self.cursor = ""


class PollPacer:
    """The wait between claims that found nothing while the relay could not go idle.

    Starts at `min_s` and doubles up to `max_s` while claims come back empty; any claim that
    finds rows resets it, so a steady trickle of writes is picked up within milliseconds.
    """

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s, self.max_s = min_s, max(min_s, max_s)
        self.current = min_s

    def found_rows(self) -> None:
        self.current = self.min_s

    def next_wait(self) -> float:
        wait = self.current
        self.current = min(self.max_s, self.current * 2)
        return wait


class TenantActivity:
    """When each tenant was last seen (claimed, judged, or with rows waiting), to forget idle ones.

    A tenant is idle once it has had nothing pending, failed or dead and no batch for `idle_s`
    and its circuit is closed; the relay then drops its metric series and circuit, so the
    relay's per-tenant state is bounded by the tenants active within `idle_s` (plus those
    with rows waiting or dead), whatever stream of tenant ids it sees.
    """

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.last_seen: dict[str, float] = {}

    def seen(self, tenants: Iterable[str], now: float) -> None:
        for tenant in tenants:
            self.last_seen[tenant] = now

    def idle(self, now: float, busy: Iterable[str], circuits: Circuits) -> set[str]:
        """Forget and return the tenants idle at `now` (`busy`: tenants with rows waiting or dead)."""
        self.seen(busy, now)
        gone = {
            tenant for tenant, last in self.last_seen.items()
            if now - last >= self.idle_s and circuits.by_tenant.get(tenant, _CLOSED).state is CircuitState.CLOSED
        }
        for tenant in gone:
            del self.last_seen[tenant]
        return gone


_CLOSED = Circuit(threshold=1, reset_s=0.0)


class KeyedRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> str: ...


Row = TypeVar("Row", bound=KeyedRow)


def in_key_order(rows: list[Row]) -> list[Row]:
    """`rows` with each key's rows in id order, on the places that key's rows hold (other rows stay).

    A claim returns a tenant's rows in the order they came due; two overlapping writer
    transactions can leave a key's newer row due first (next_attempt_at is a transaction's start).
    Usually nothing moves: one pass finds that out.
    """
    newest: dict[tuple[str, str, str], int] = {}
    for row in rows:
        key = (row.tenant_id, row.topic, row.key)
        if newest.get(key, 0) > row.id:
            break
        newest[key] = row.id
    else:
        return rows
    places: dict[tuple[str, str, str], list[int]] = {}
    for index, row in enumerate(rows):
        places.setdefault((row.tenant_id, row.topic, row.key), []).append(index)
    ordered = list(rows)
    for indexes in places.values():
        for index, row in zip(indexes, sorted((rows[i] for i in indexes), key=lambda r: r.id), strict=True):
            ordered[index] = row
    return ordered


def held_back(rows: Sequence[KeyedRow], blockers: Mapping[tuple[str, str, str], int]) -> frozenset[int]:
    """Ids of claimed rows not to produce: those newer than their key's `blocker`, an unsent row of
    the same (tenant, topic, key) the claim does not hold. They are released unchanged and
    claimed again once the blocker is sent or dead, so a key's rows go out in order."""
    return frozenset(
        row.id for row in rows
        if (blocker := blockers.get((row.tenant_id, row.topic, row.key))) is not None and row.id > blocker
    )
