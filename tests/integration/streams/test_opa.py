"""The integrator's OPA check against real OPA processes: answers, an undefined policy, OPA
stopped and OPA too slow, under both fail modes; the decision cache; the decisions counted in
the integrator's registry (`soma_auth_*{action="leader_change"}`).

Each test starts its own OPA on a free port and stops it by pid; nothing runs `soma up`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from soma.settings import Settings
from streams.logic.policy import DecisionCache
from streams.runtime.metrics import StreamMetrics
from streams.runtime.opa import LeaderPolicy, PolicyAnswer
from tests.support.opa import SlowFront, opa_server

PATH = "soma/leader/allow"


@pytest.fixture
def opa_url(stack: Settings, tmp_path: Path) -> Iterator[str]:
    with opa_server(stack, tmp_path / "opa.log") as url:
        yield url


def change(to: str, tenant: str = "acme", previous: str = "math") -> dict[str, Any]:
    return {"tenant": tenant, "from": previous, "to": to, "weights": {previous: 0.4, to: 0.6}}


@dataclass
class Integrator:
    """The integrator's policy check as it runs there: one cache and one registry across decisions."""

    url: str
    path: str = PATH
    metrics: StreamMetrics = field(default_factory=lambda: StreamMetrics("integrator"))
    cache: DecisionCache = field(default_factory=DecisionCache)

    def ask(self, query: dict[str, Any], fail_mode: str, timeout_s: float = 5.0,
            cache_ttl_s: float = 0.0) -> PolicyAnswer:
        async def decide() -> PolicyAnswer:
            # A client per event loop: each asyncio.run is a new loop.
            policy = LeaderPolicy(self.url, self.path, metrics=self.metrics.auth, cache=self.cache)
            try:
                return await policy.allow(query, fail_mode=fail_mode, timeout_s=timeout_s, cache_ttl_s=cache_ttl_s)
            finally:
                await policy.close()

        return asyncio.run(decide())

    def counted(self, result: str) -> float:
        labels = {"action": "leader_change", "result": result, "service": "stream-integrator"}
        return self.metrics.registry.get_sample_value("soma_auth_decisions_total", labels) or 0.0


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
def test_opa_answers_decide_whatever_the_fail_mode(opa_url: str, fail_mode: str) -> None:
    policy = Integrator(opa_url)
    allowed = policy.ask(change("art"), fail_mode)
    vetoed = policy.ask(change("restricted-ops"), fail_mode)  # leader.rego: never a restricted* leader
    assert (allowed.allowed, allowed.decided, allowed.outcome) == (True, True, "allow")
    assert (vetoed.allowed, vetoed.decided, vetoed.outcome) == (False, True, "veto")
    assert policy.counted("allow") == 1
    assert policy.counted("veto") == 1


@pytest.mark.parametrize(("fail_mode", "allowed"), [("open", True), ("closed", False)])
def test_an_undefined_policy_follows_the_fail_mode(opa_url: str, fail_mode: str, allowed: bool) -> None:
    policy = Integrator(opa_url, "soma/leader/no_such_rule")  # OPA answers {} (no result)
    answer = policy.ask(change("art"), fail_mode)
    assert (answer.allowed, answer.decided, answer.outcome) == (allowed, False, "undefined")
    assert policy.counted("undefined") == 1


@pytest.mark.parametrize(("fail_mode", "allowed"), [("open", True), ("closed", False)])
def test_opa_stopped_follows_the_fail_mode(stack: Settings, tmp_path: Path, fail_mode: str, allowed: bool) -> None:
    with opa_server(stack, tmp_path / "opa.log") as url:
        policy = Integrator(url)
        assert policy.ask(change("art"), fail_mode).outcome == "allow"
    # The block stopped OPA (SIGTERM by pid, then SIGKILL): nothing listens on its port now.
    answer = policy.ask(change("art"), fail_mode)
    assert (answer.allowed, answer.decided, answer.outcome) == (allowed, False, "error")
    assert policy.counted("error") == 1


@pytest.mark.parametrize(("fail_mode", "allowed"), [("open", True), ("closed", False)])
def test_a_slow_opa_times_out_into_the_fail_mode(opa_url: str, fail_mode: str, allowed: bool) -> None:
    front = SlowFront(opa_url, delay_s=3.0)
    try:
        policy = Integrator(front.url)
        started = time.monotonic()
        answer = policy.ask(change("restricted-ops"), fail_mode, timeout_s=0.3)  # OPA would veto it
        elapsed = time.monotonic() - started
    finally:
        front.close()
    assert (answer.allowed, answer.decided, answer.outcome) == (allowed, False, "timeout")
    assert elapsed < 2.5  # the timeout, not the delay, decided how long the call took
    assert policy.counted("timeout") == 1
    labels = {"action": "leader_change", "result": "timeout", "service": "stream-integrator"}
    observed = policy.metrics.registry.get_sample_value("soma_auth_duration_seconds_sum", labels)
    assert observed is not None
    assert 0.3 <= observed < 2.5


def test_answers_are_cached_per_decision_input_for_the_ttl(stack: Settings, tmp_path: Path) -> None:
    with opa_server(stack, tmp_path / "opa.log") as url:
        policy = Integrator(url)
        assert policy.ask(change("restricted-ops"), "open", cache_ttl_s=60).outcome == "veto"
        assert policy.ask(change("art"), "open", cache_ttl_s=0).outcome == "allow"  # ttl 0: not kept
    # OPA is gone: the cached veto still decides; every other input fails open.
    hit = policy.ask(change("restricted-ops"), "open", cache_ttl_s=60)
    assert (hit.allowed, hit.outcome, hit.cached) == (False, "veto", True)
    for other in (change("art"), change("restricted-ops", tenant="globex"), change("restricted-ops", previous="art")):
        missed = policy.ask(other, "open", cache_ttl_s=60)
        assert (missed.allowed, missed.outcome, missed.cached) == (True, "error", False)
    assert policy.counted("cached") == 1
    assert policy.counted("error") == 3
