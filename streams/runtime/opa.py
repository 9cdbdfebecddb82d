"""The leader-change policy check against OPA (optional; fail-open or fail-closed).

The I/O around `streams.logic.policy`: one POST per decision not in the cache, classified as
`allow`/`veto`/`undefined`/`error`/`timeout`, the tenant's fail mode applied to all but the
first two, and every decision counted in `soma_auth_decisions_total{action="leader_change"}`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from soma.clients import http_client
from soma.observability.auth_metrics import AuthMetrics
from streams.logic.policy import (
    ALLOW,
    CACHED,
    ERROR,
    LEADER_CHANGE,
    TIMEOUT,
    VETO,
    DecisionCache,
    DecisionKey,
    decide,
    outcome_of,
)

log = logging.getLogger("streams.opa")


@dataclass(frozen=True)
class PolicyAnswer:
    allowed: bool
    decided: bool  # False: OPA gave no boolean answer and the fail mode decided
    outcome: str = ALLOW  # allow, veto, undefined, error, timeout (the cached outcome for a cache hit)
    cached: bool = False


class LeaderPolicy:
    def __init__(
        self, url: str | None, path: str, *, metrics: AuthMetrics | None = None, cache: DecisionCache | None = None
    ) -> None:
        self.url = url.rstrip("/") if url else None
        self.path = path.strip("/")
        self.metrics = metrics
        self.cache = cache if cache is not None else DecisionCache()
        self._client = http_client() if self.url else None

    async def allow(
        self, query: dict[str, Any], *, fail_mode: str, timeout_s: float, cache_ttl_s: float = 0.0
    ) -> PolicyAnswer:
        """Whether the change in `query` (tenant, from, to, weights) may happen. Never raises for OPA's sake."""
        if self._client is None or self.url is None:
            return PolicyAnswer(True, True)
        started = time.perf_counter()
        key: DecisionKey = (str(query.get("tenant")), query.get("from"), str(query.get("to")))
        outcome = self.cache.get(key) if cache_ttl_s > 0 else None
        cached = outcome is not None
        if outcome is None:
            outcome = await self._ask(self._client, query, timeout_s, fail_mode)
            self.cache.put(key, outcome, cache_ttl_s)
        if self.metrics is not None:
            self.metrics.record(LEADER_CHANGE, CACHED if cached else outcome, time.perf_counter() - started)
        return PolicyAnswer(decide(outcome, fail_mode), outcome in (ALLOW, VETO), outcome, cached)

    async def _ask(self, client: httpx.AsyncClient, query: dict[str, Any], timeout_s: float, fail_mode: str) -> str:
        try:
            response = await client.post(f"{self.url}/v1/data/{self.path}", json={"input": query}, timeout=timeout_s)
            response.raise_for_status()
            outcome = outcome_of(response.json())
        except httpx.TimeoutException:
            log.warning("OPA did not answer within %.3gs; failing %s", timeout_s, fail_mode)
            return TIMEOUT
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("OPA unavailable (%s); failing %s", exc, fail_mode)
            return ERROR
        if outcome not in (ALLOW, VETO):
            log.warning("OPA policy %s gave no boolean result (undefined); failing %s", self.path, fail_mode)
        return outcome

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
