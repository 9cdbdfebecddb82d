"""The integrator as the owner of sleep transitions: it decides every SleepRequest, runs the TTL and
schedule clock, writes SleepStateChanged to `cog.sleep` (the only writer) and caches it in Redis.

Only the integrator instance a tenant's `cog.sleep_requests` partition is assigned to acts for it
(the topic is co-partitioned with `cog.predictor_updates`, so that is also the instance computing
its frames), and its clock acts only once its sleep mirror has read `cog.sleep` to the start-up end
offsets: after a SIGKILL the restarted integrator sees the wake its predecessor wrote before it
could write another. A transition's event id and seq come from its cause, so the record a
rebalance overlap might write twice is the same record, and every applier ignores the second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from soma.contracts.partition import partition_for
from soma.sleep.policy import STATES, redis_key
from streams.logic.output import Output
from streams.logic.sleep import Ignored, Transition, decide, due
from streams.runtime.core import log
from streams.runtime.faults import is_infrastructure
from streams.runtime.records import Incoming

MAX_KNOWN = 100_000  # tenants the clock looks at besides those with a sleep record or policy of their own
# Redis is a cache: it may restart empty or be flushed. The owner writes its tenants' states again when
# its partitions change (start, rebalance) and this often, so readers never see "nothing recorded" for long.
RECACHE_S = 60.0


class SleepOwner:
    def __init__(self, stream: Any, redis: Callable[[], Redis], clock: Callable[[], datetime] | None = None) -> None:
        self.stream = stream  # the integrator's StreamApp
        self.redis = redis
        self.clock = clock or (lambda: datetime.now(UTC))
        self.known: set[str] = set()  # tenants seen on the sources (a global schedule applies to them)
        self.recached: tuple[frozenset[int], float] = (frozenset(), 0.0)  # partitions cached, and when (monotonic)

    def seen(self, tenant: str) -> None:
        if len(self.known) < MAX_KNOWN:
            self.known.add(tenant)

    async def handle_request(self, record: Incoming) -> None:
        """Decide one SleepRequest (a BadRequest raises: the caller dead-letters it)."""
        s, tenant, now = self.stream, record.tenant, self.clock()
        self.seen(tenant)
        decision = decide(record.value, s.sleep_current(tenant), s.sleep_policy(tenant), now,
                          enabled=s.sleep_enabled(tenant))
        if isinstance(decision, Ignored):
            log.info("%s: sleep request %s for %s changes nothing (%s)", s.name, record.event_id, tenant, decision.why)
            s.metrics.tenant_child(s.metrics.sleep_ignored, tenant, decision.why).inc()
            if decision.why == "duplicate":  # redelivered after a crash between cog.sleep and Redis
                await self.cache(tenant, s.sleep_record(tenant))
            return
        await self.write(tenant, decision, now)

    async def write(self, tenant: str, t: Transition, now: datetime) -> None:
        """cog.sleep (acknowledged), then the mirror notes it, then the Redis cache and the metrics."""
        s = self.stream
        version = s.live.version("sleep_policy", tenant) or s.live.version("sleep_policy")
        record = {
            "event_id": t.event_id, "tenant_id": tenant, "occurred_at": now, "seq": t.seq,
            "from_state": t.from_state, "to_state": t.to_state, "reason": t.reason, "until": t.until,
            "params": s.sleep_effective(tenant, t.to_state).to_record(), "policy_version": version,
            "requested_by": t.requested_by[:200], "request_id": t.request_id,
        }
        await s.emit([Output("cog.sleep", record, tenant)])
        s.note_written(record)
        log.info("%s: sleep %s: %s -> %s (%s, seq %d, until %s)", s.name, tenant, t.from_state, t.to_state,
                 t.reason, t.seq, t.until.isoformat() if t.until else "-")
        s.metrics.tenant_child(s.metrics.sleep_transitions, tenant, t.from_state, t.to_state, t.reason).inc()
        await self.cache(tenant, record)
        self.show(tenant)

    async def recache(self, owned: set[int], partitions: int) -> None:
        """Every owned tenant's current state into Redis again (one pipeline), when due."""
        held, at = self.recached
        if held == frozenset(owned) and time.monotonic() - at < RECACHE_S:
            return
        s = self.stream
        tenants = set(s.sleep_held) | set(s.sleep_written)
        async with self.redis().pipeline(transaction=False) as pipe:
            for tenant in tenants:
                record = s.sleep_record(tenant)
                if record is not None and partition_for(tenant.encode(), partitions) in owned:
                    pipe.set(redis_key(tenant), json.dumps(s.codec.to_json("cog.sleep", record), sort_keys=True))
            await pipe.execute()
        self.recached = (frozenset(owned), time.monotonic())

    async def cache(self, tenant: str, record: dict[str, Any] | None) -> None:
        if record is None:
            return
        cached = self.stream.codec.to_json("cog.sleep", record)
        await self.redis().set(redis_key(tenant), json.dumps(cached, sort_keys=True))

    def show(self, tenant: str) -> None:
        """The tenant's gauges: its state (as written, whatever ENABLE_SLEEP says), since when, its limit."""
        s = self.stream
        current = s.sleep_current(tenant)
        if current is None:
            return
        for state in STATES:
            s.metrics.tenant_child(s.metrics.sleep_state, tenant, state).set(1 if state == current.state else 0)
        s.metrics.tenant_child(s.metrics.sleep_entered, tenant).set(current.occurred_at.timestamp())
        limit = s.sleep_policy(tenant).params(current.state).max_duration_s if current.asleep else None
        s.metrics.tenant_child(s.metrics.sleep_max_duration, tenant).set(limit if limit is not None else float("inf"))

    def owned(self) -> set[int]:
        """The cog.sleep_requests partitions assigned to this instance now (empty mid-rebalance)."""
        physical = self.stream.settings.topic_name("cog.sleep_requests")
        try:
            return {tp.partition for tp in self.stream.app.consumer.assignment() if tp.topic == physical}
        except Exception:  # no consumer thread yet, or mid-rebalance: act on nothing this time
            return set()

    def candidates(self) -> set[str]:
        """The tenants the clock may have to move: with a transition, a policy of their own, or (only when the
        global policy has a schedule) any seen since start."""
        s = self.stream
        tenants = set(s.sleep_held) | set(s.sleep_written)
        tenants |= {scope for (scope, field) in s.live.overrides() if scope and field == "sleep_policy"}
        if s.sleep_policy(None).schedule:
            tenants |= self.known
        return tenants

    async def tick(self) -> None:
        """The clock (an app timer): TTL wakes and schedule windows of the tenants this instance owns."""
        s = self.stream
        if not s.sleep_loaded.is_set():
            return
        owned, partitions = self.owned(), s.catalog.topic("cog.sleep_requests").partitions
        if not owned:
            return
        try:
            await self.recache(owned, partitions)
        except Exception as exc:  # Redis down: the next tick tries again (the log stays the truth)
            log.warning("%s: sleep cache refresh: %s: %s", s.name, type(exc).__name__, exc)
        now = self.clock()
        for tenant in sorted(self.candidates()):
            if partition_for(tenant.encode(), partitions) not in owned:
                continue
            try:
                if s.sleep_enabled(tenant):
                    transition = due(tenant, s.sleep_current(tenant), s.sleep_policy(tenant), now)
                    if transition is not None:
                        await self.write(tenant, transition, now)
                self.show(tenant)
            except Exception as exc:  # the next tick tries again; one tenant never stops the others
                log.warning("%s: sleep clock for %s: %s: %s", s.name, tenant, type(exc).__name__, exc,
                            exc_info=not is_infrastructure(exc))
