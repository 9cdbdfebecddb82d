"""The integrator's sleep clock acts only once its mirror is loaded, and only for the tenants whose
cog.sleep_requests partition it is assigned; what it writes is held until the mirror reads it back.

(The real integrator across a SIGKILL: tests/integration/streams/test_sleep_ttl.py.)
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from soma.contracts.partition import partition_for
from streams.runtime.sleep_owner import SleepOwner
from tests.unit.streams.runtime.test_sleep_mirror import feed, mirror, record

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class FakeRedis:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis, self.queued = redis, dict[str, str]()

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    def set(self, key: str, value: str) -> None:
        self.queued[key] = value

    async def execute(self) -> None:
        self.redis.values.update(self.queued)


def owner(assigned: set[int]) -> tuple[SleepOwner, Any, list[dict[str, Any]], FakeRedis]:
    stream = mirror(enable_sleep=True)
    written: list[dict[str, Any]] = []

    async def emit(outputs: Any, cause: Any = None) -> None:
        written.extend(dict(o.event) for o in outputs)

    physical = stream.settings.topic_name("cog.sleep_requests")
    stream.emit = emit
    stream.app = SimpleNamespace(consumer=SimpleNamespace(
        assignment=lambda: [SimpleNamespace(topic=physical, partition=p) for p in assigned]))
    redis = FakeRedis()
    return SleepOwner(stream, lambda: redis, clock=lambda: NOW), stream, written, redis  # type: ignore[arg-type, return-value]


def asleep_until(tenant: str, until: datetime) -> dict[str, Any]:
    return {**record(1, "light", tenant), "until": until}


def test_the_clock_wakes_only_owned_tenants_once_the_mirror_is_loaded() -> None:
    mine, theirs = "t-mine", next(f"t-{n}" for n in range(100) if partition_for(f"t-{n}".encode(), 3)
                                  != partition_for(b"t-mine", 3))
    sleep_owner, stream, written, redis = owner({partition_for(b"t-mine", 3)})
    feed(stream, asleep_until(mine, NOW - timedelta(seconds=1)), asleep_until(theirs, NOW - timedelta(seconds=1)))
    asyncio.run(sleep_owner.tick())
    assert written == []  # not loaded yet: a restarted integrator must read the log to its end first
    stream.sleep_loaded.set()
    asyncio.run(sleep_owner.tick())
    assert [(w["tenant_id"], w["seq"], w["reason"], w["to_state"]) for w in written] == [(mine, 2, "ttl_wake", "awake")]
    assert f"sleep:{mine}" in redis.values
    asyncio.run(sleep_owner.tick())  # written, not read back yet: held, so nothing is written again
    assert len(written) == 1
    assert stream.sleep_current(mine).state == "awake"
    feed(stream, written[0])
    asyncio.run(sleep_owner.tick())
    assert len(written) == 1
    assert stream.metrics.sleep_state.labels("awake", mine)._value.get() == 1


def test_nothing_is_owned_mid_rebalance() -> None:
    sleep_owner, stream, written, _ = owner(set())
    feed(stream, asleep_until("t-mine", NOW - timedelta(seconds=1)))
    stream.sleep_loaded.set()
    asyncio.run(sleep_owner.tick())
    assert written == []


def test_the_owner_writes_its_tenants_states_into_redis_again(monkeypatch: Any) -> None:
    """Redis is a cache: after a restart or a flush the owner fills it again, on start and then every RECACHE_S."""
    from streams.runtime import sleep_owner as module

    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    mine = "t-mine"
    sleep_owner, stream, written, redis = owner({partition_for(mine.encode(), 3)})
    feed(stream, asleep_until(mine, NOW + timedelta(hours=1)))  # asleep, nothing due: no transition written
    stream.sleep_loaded.set()
    asyncio.run(sleep_owner.tick())
    assert written == []
    assert '"to_state": "light"' in redis.values[f"sleep:{mine}"]  # cached on start without a transition
    redis.values.clear()  # Redis restarted empty
    asyncio.run(sleep_owner.tick())
    assert redis.values == {}  # not due yet
    clock[0] += module.RECACHE_S
    asyncio.run(sleep_owner.tick())
    assert f"sleep:{mine}" in redis.values
