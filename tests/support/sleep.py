"""Sleep requests and transitions for the streams' sleep tests (requests produced like any producer would)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from soma.clients import redis_client
from soma.settings import Settings
from soma.sleep import redis_key
from tests.support.procs import run_soma, wait_for
from tests.support.streams import Bus, scrape


def request(bus: Bus, tenant: str, to_state: str, *, reason: str = "manual", until: datetime | None = None,
            requested_by: str = "test") -> str:
    """Produce a SleepRequest on cog.sleep_requests; its event id."""
    return bus.send("cog.sleep_requests", {"tenant_id": tenant, "to_state": to_state, "reason": reason,
                                           "until": until, "requested_by": requested_by}, tenant)


def transitions(bus: Bus, tenant: str, count: int, timeout_s: float = 45.0) -> list[dict[str, Any]]:
    """The tenant's first `count` SleepStateChanged records on cog.sleep, in order."""
    found = bus.collect("cog.sleep", lambda e: len(e) >= count, timeout_s,
                        keep=lambda e: e.value.get("tenant_id") == tenant)
    return [e.value for e in found]


def cached(settings: Settings, tenant: str) -> dict[str, Any] | None:
    """The integrator's Redis copy of the tenant's current transition."""
    client = redis_client(settings)
    try:
        raw = client.get(redis_key(tenant))
    finally:
        client.close()
    return json.loads(raw) if raw else None


def update(tenant: str, domain: str, confidence: float) -> dict[str, Any]:
    return {"tenant_id": tenant, "source_kind": "state", "predictor_id": "p1", "domain": domain,
            "confidence": confidence}


def frames(bus: Bus, tenant: str, count: int) -> list[dict[str, Any]]:
    found = bus.collect("cog.global_frame", lambda f: len(f) >= count, 45.0,
                        keep=lambda e: e.value.get("tenant_id") == tenant)
    return [e.value for e in found]


def set_live(settings: Settings, streams: tuple[str, ...], *args: str) -> None:
    """`soma config set ARGS`, then wait until every stream named has applied one more update."""
    before = {name: scrape(settings, name).value("soma_config_updates_applied_total") for name in streams}
    result = run_soma(settings, "config", "set", *args)
    assert result.returncode == 0, result.stderr
    for name in streams:
        wait_for(lambda n=name: scrape(settings, n).value("soma_config_updates_applied_total") >= before[n] + 1,  # type: ignore[misc]
                 30, what=f"{name} applying {args[0]}")
