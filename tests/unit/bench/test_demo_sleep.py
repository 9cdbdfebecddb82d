"""The demo's sleep step without the platform: its admin call, the records it waits for, what it reports."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench.demo.hops import INFO, MISSED, SEEN, SKIPPED, Hop
from bench.demo.observe import Seen
from bench.demo.recorder import Chain
from bench.demo.sleep import DEMO_SLEEP_S, SleepSteps, deep_request
from soma.settings import Settings


class Records:
    """The observer's part: records already read, oldest first (no waiting: a test has them all)."""

    def __init__(self, seen: list[Seen]) -> None:
        self.seen = seen

    def wait(self, predicate: Any, timeout_s: float) -> Seen | None:
        return next((s for s in self.seen if predicate(s)), None)


def _seen(topic: str, value: dict[str, Any], offset: int) -> Seen:
    return Seen(topic, {"tenant_id": "demo-acme", **value}, {}, 0, offset, time.time(), time.time())


def _transition(seq: int, from_state: str, to_state: str, reason: str, request_id: str | None) -> dict[str, Any]:
    return {"seq": seq, "from_state": from_state, "to_state": to_state, "reason": reason, "until": None,
            "params": {"eta": 0.0}, "request_id": request_id}


@dataclass
class Step(SleepSteps):
    records: list[Seen] = field(default_factory=list)
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    cached: dict[str, Any] | None = None
    published: list[tuple[str, str, str]] = field(default_factory=list)
    calls: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    enable_sleep: bool = True

    def __post_init__(self) -> None:
        self.settings, self.hop_timeout_s, self.acme = Settings(), 2.0, "demo-acme"
        self.hops: list[Hop] = []
        self.report = lambda hop: None
        self.observer = Records(self.records)  # type: ignore[assignment]

    def config(self, step: str, chain: Chain, name: str, value: str, tenant: str) -> float:
        self.published.append((name, value, tenant))
        self.add(Hop(step, f"config update {name}={value} published", "config_updates", tenant))
        return time.time()

    def admin_call(self, method: str, path: str, tenant: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.calls.append((method, path, tenant, body))
        return self.answers.pop(0)

    def cached_state(self, tenant: str) -> dict[str, Any] | None:
        return self.cached


def _platform(request_id: str = "r-1") -> list[Seen]:
    return [
        _seen("cog.sleep_requests", {"event_id": request_id, "to_state": "deep", "reason": "manual"}, 0),
        _seen("cog.sleep", _transition(1, "awake", "deep", "manual", request_id), 0),
        _seen("cog.sleep", _transition(2, "deep", "awake", "ttl_wake", None), 1),
    ]


def test_the_sleep_cycle_switches_the_flag_on_sleeps_deep_and_sees_the_ttl_wake() -> None:
    step = Step(records=_platform(), answers=[(409, {"detail": "sleep is off"}), (202, {"request_id": "r-1",
                                                                                       "until": "T"})],
                cached={"to_state": "deep", "seq": 1})
    step.sleep_cycle()
    assert step.published == [("ENABLE_SLEEP", "true", "demo-acme")]
    # Asked again after the 409: the admin API reads the live settings every few seconds.
    assert [c[:3] for c in step.calls] == [("PUT", "/admin/brain/sleep_mode", "demo-acme")] * 2
    assert step.calls[0][3] == deep_request() == {"state": "deep", "for": f"{DEMO_SLEEP_S}s"}
    assert [h.status for h in step.hops] == [SEEN] * 6
    assert [h.where for h in step.hops] == ["config_updates", "PUT /admin/brain/sleep_mode", "cog.sleep_requests",
                                            "cog.sleep", "redis sleep:demo-acme", "cog.sleep"]
    assert "seq=2 deep -> awake (ttl_wake)" in step.hops[-1].fields
    assert "seq=1 awake -> deep (manual)" in step.hops[3].fields


def test_a_transition_of_another_request_or_a_wake_out_of_order_is_not_taken() -> None:
    records = [
        _seen("cog.sleep_requests", {"event_id": "r-1", "to_state": "deep", "reason": "manual"}, 0),
        _seen("cog.sleep", _transition(1, "awake", "deep", "manual", "someone-else"), 0),
        _seen("cog.sleep", _transition(3, "deep", "awake", "ttl_wake", None), 1),
    ]
    step = Step(records=records, answers=[(202, {"request_id": "r-1", "until": "T"})], cached=None)
    step.sleep_cycle()
    statuses = {h.hop: h.status for h in step.hops}
    assert statuses["integrator entered deep"] == MISSED
    assert statuses["integrator cached the state"] == SKIPPED
    assert statuses[f"TTL wake after {DEMO_SLEEP_S}s"] == SKIPPED


def test_a_refused_request_is_one_missed_hop_naming_the_answer() -> None:
    step = Step(answers=[(403, {"detail": "forbidden: the token's scope does not cover this request"})])
    step.sleep_cycle()
    [hop] = [h for h in step.hops if h.status == MISSED]
    assert hop.note.startswith("HTTP 403: forbidden")
    assert len(step.hops) == 2  # nothing waited for after it


def test_no_enable_sleep_runs_nothing() -> None:
    step = Step(enable_sleep=False)
    step.sleep_cycle()
    assert [h.status for h in step.hops] == [INFO]
    assert step.published == []
    assert step.calls == []
