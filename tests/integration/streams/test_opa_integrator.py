"""The real integrator process failing closed: OPA's answers decide; a slow OPA (past the timeout)
and an unreachable one veto the change; every decision is on the integrator's /metrics.

The integrator asks OPA through a front whose delay the test sets (`SlowFront`); the OPA behind
it is a real process this module starts and, for the last case, stops by pid.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from pathlib import Path

from soma.settings import Settings
from tests.integration.streams.conftest import LOGS
from tests.support.opa import SlowFront, opa_decisions, opa_server
from tests.support.streams import Bus, stream_process, wait_ready


def leader_change(bus: Bus, to: str) -> tuple[str, bool]:
    """A new tenant led by `plan`, then an update making `to` the leader: the second frame's (leader, vetoed)."""
    tenant = f"opa-{uuid.uuid4().hex[:8]}"
    for domain, confidence in (("plan", 1.0), (to, 100.0)):
        bus.send("cog.predictor_updates", {"tenant_id": tenant, "source_kind": "state", "predictor_id": "p1",
                                           "domain": domain, "confidence": confidence}, tenant)
    frames = bus.collect("cog.global_frame", lambda f: len(f) >= 2, keep=lambda e: e.value.get("tenant_id") == tenant)
    return frames[1].value["leader"], frames[1].value["vetoed"]


def test_the_integrator_fails_closed_on_a_slow_or_stopped_opa(
    topics_ensured: Settings, stack: Settings, tmp_path: Path,
) -> None:
    with ExitStack() as opa, ExitStack() as rest:
        url = opa.enter_context(opa_server(stack, tmp_path / "opa.log"))
        front = SlowFront(url, delay_s=0.0)
        rest.callback(front.close)
        own = topics_ensured.replace(enable_cog_threads=True, opa_url=front.url, opa_fail_mode="closed",
                                     opa_timeout_s=0.5, opa_cache_ttl_s=0.0)
        rest.enter_context(stream_process("integrator", own, LOGS))
        wait_ready(own, "integrator", timeout_s=90)
        bus = Bus(own)
        before = opa_decisions(own)
        assert leader_change(bus, "act") == ("act", False)  # OPA allows
        assert leader_change(bus, "restricted-x") == ("plan", True)  # OPA vetoes
        front.delay_s = 3.0  # OPA now answers after the integrator's 0.5 s deadline
        assert leader_change(bus, "act") == ("plan", True)
        front.delay_s = 0.0
        opa.close()  # OPA stopped (SIGTERM by pid, then SIGKILL): the front cannot reach it
        assert leader_change(bus, "act") == ("plan", True)
        after = opa_decisions(own)
    assert {k: after.get(k, 0) - before.get(k, 0) for k in ("allow", "veto", "timeout", "error")} == {
        "allow": 1, "veto": 1, "timeout": 1, "error": 1,
    }
