"""Sleep transitions decided purely: every rule of `decide`, the clock (`due`) and the traffic wake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from soma.contracts.ids import derive_id
from soma.sleep import SleepPolicy
from streams.logic.sleep import BadRequest, Current, Ignored, Transition, decide, due, occurrence, traffic_wake

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
POLICY = SleepPolicy()


def req(to_state: str, reason: str = "manual", until: datetime | None = None, event_id: str = "r1") -> dict[str, Any]:
    return {"event_id": event_id, "tenant_id": "acme", "occurred_at": NOW, "to_state": to_state, "reason": reason,
            "until": until, "requested_by": "ops"}


def cur(state: str, reason: str = "manual", until: datetime | None = None, seq: int = 3,
        at: datetime = NOW - timedelta(hours=1), request_id: str | None = "r0") -> Current:
    return Current(f"t{seq}", seq, state, reason, until, at, request_id)


def test_a_manual_request_moves_any_state_with_a_derived_id_and_the_next_seq() -> None:
    for state in ("awake", "light", "deep", "freeze"):
        for to in ("awake", "light", "deep", "freeze"):
            if state == to:
                continue
            t = decide(req(to), cur(state), POLICY, NOW)
            assert t == Transition(derive_id("r1", "sleep"), 4, state, to, "manual", None, "ops", "r1")
    first = decide(req("light"), None, POLICY, NOW)
    assert isinstance(first, Transition)
    assert (first.seq, first.from_state) == (1, "awake")


def test_sleep_off_for_the_tenant_ignores_every_request() -> None:
    assert decide(req("deep"), cur("awake"), POLICY, NOW, enabled=False) == Ignored("disabled")


def test_same_state_and_same_until_is_a_no_op_but_a_new_until_is_a_transition() -> None:
    until = NOW + timedelta(hours=1)
    assert decide(req("light", until=until), cur("light", until=until), POLICY, NOW) == Ignored("no_change")
    assert decide(req("awake"), cur("awake"), POLICY, NOW) == Ignored("no_change")
    later = decide(req("light", until=until + timedelta(minutes=5)), cur("light", until=until), POLICY, NOW)
    assert isinstance(later, Transition)
    assert later.until == until + timedelta(minutes=5)


def test_a_redelivered_request_already_applied_is_a_duplicate() -> None:
    assert decide(req("deep", event_id="r0"), cur("deep", request_id="r0"), POLICY, NOW) == Ignored("duplicate")


def test_manual_until_defaults_to_the_policy_ttl_and_is_capped_at_30_days() -> None:
    with_ttl = SleepPolicy(default_ttl_s=600)
    t = decide(req("deep"), cur("awake"), with_ttl, NOW)
    assert isinstance(t, Transition)
    assert t.until == NOW + timedelta(seconds=600)
    woke = decide(req("awake"), cur("deep"), with_ttl, NOW)
    assert isinstance(woke, Transition)
    assert woke.until is None  # awake has no until
    far = decide(req("light", until=NOW + timedelta(days=90)), cur("awake"), POLICY, NOW)
    assert isinstance(far, Transition)
    assert far.until == NOW + timedelta(days=30)


@pytest.mark.parametrize(("request_", "message"), [
    (req("light", until=NOW - timedelta(seconds=1)), "is not in the future"),
    (req("light", until=NOW), "is not in the future"),
    (req("awake", until=NOW + timedelta(hours=1)), "awake has no until"),
    (req("awake", reason="ttl_wake"), "the integrator's own"),
    (req("light", reason="schedule"), "the integrator's own"),
    (req("deep", reason="traffic_wake"), "traffic_wake asks for awake"),
    (req("deep", reason="circuit"), "a circuit request asks for light or awake"),
    (req("sideways"), "unknown sleep state 'sideways'"),
])
def test_bad_requests_raise_naming_the_problem(request_: dict[str, Any], message: str) -> None:
    with pytest.raises((BadRequest, ValueError), match=message):
        decide(request_, cur("light"), POLICY, NOW)


def test_traffic_wake_only_when_asleep_and_the_policy_wakes_on_traffic() -> None:
    wake = req("awake", reason="traffic_wake")
    t = decide(wake, cur("deep"), POLICY, NOW)
    assert isinstance(t, Transition)
    assert (t.from_state, t.to_state, t.reason) == ("deep", "awake", "traffic_wake")
    assert decide(wake, cur("awake"), POLICY, NOW) == Ignored("not_asleep")
    assert decide(wake, None, POLICY, NOW) == Ignored("not_asleep")
    assert decide(wake, cur("light"), SleepPolicy(wake_on_traffic=False), NOW) == Ignored("wake_on_traffic_off")


def test_circuit_sleeps_light_only_when_awake_and_wakes_only_what_it_put_to_sleep() -> None:
    on = SleepPolicy(circuit_sleep=True)
    opened, closed = req("light", reason="circuit"), req("awake", reason="circuit")
    t = decide(opened, cur("awake"), on, NOW)
    assert isinstance(t, Transition)
    assert (t.to_state, t.reason) == ("light", "circuit")
    assert decide(opened, cur("awake"), POLICY, NOW) == Ignored("circuit_sleep_off")
    assert decide(opened, cur("deep"), on, NOW) == Ignored("not_awake")
    back = decide(closed, cur("light", reason="circuit"), on, NOW)
    assert isinstance(back, Transition)
    assert back.to_state == "awake"
    assert decide(closed, cur("light", reason="manual"), on, NOW) == Ignored("not_circuit")
    assert decide(closed, cur("awake", reason="circuit"), on, NOW) == Ignored("not_circuit")


def test_the_ttl_wake_comes_once_until_has_passed_with_an_id_from_the_current_transition() -> None:
    until = NOW + timedelta(seconds=30)
    assert due("acme", cur("light", until=until), POLICY, NOW) is None
    t = due("acme", cur("light", until=until), POLICY, until)
    assert t == Transition(derive_id("t3", "ttl_wake"), 4, "light", "awake", "ttl_wake", None, "ttl", None)
    assert due("acme", cur("deep"), POLICY, NOW + timedelta(days=365)) is None  # no until: asleep until asked
    assert due("acme", cur("awake"), POLICY, NOW) is None


def test_a_schedule_window_is_entered_once_and_left_at_its_end() -> None:
    policy = SleepPolicy.model_validate({"schedule": [{"state": "deep", "start": "11:30", "end": "13:00"}]})
    slot = f"schedule:{NOW.replace(hour=11, minute=30).isoformat()}"
    entered = due("acme", cur("awake", at=NOW - timedelta(hours=2)), policy, NOW)
    assert isinstance(entered, Transition)
    assert (entered.to_state, entered.reason, entered.until) == ("deep", "schedule", NOW.replace(hour=13))
    assert entered.event_id == derive_id("t3", slot)
    # woken by hand inside the window: it stays awake
    assert due("acme", cur("awake", at=NOW - timedelta(minutes=10)), policy, NOW) is None
    # a first transition for a tenant with no record yet
    fresh = due("acme", None, policy, NOW)
    assert isinstance(fresh, Transition)
    assert (fresh.seq, fresh.event_id) == (1, derive_id("sleep:acme", slot))
    left = due("acme", cur("deep", reason="schedule", until=NOW.replace(hour=13)), policy, NOW.replace(hour=13))
    assert isinstance(left, Transition)
    assert (left.to_state, left.reason, left.until) == ("awake", "schedule", None)
    assert due("acme", cur("awake", at=NOW - timedelta(hours=5)), policy, NOW.replace(hour=14)) is None


def test_a_window_past_midnight_and_the_deepest_of_overlapping_windows() -> None:
    night = SleepPolicy.model_validate({"schedule": [{"state": "light", "start": "22:00", "end": "06:00"},
                                                     {"state": "deep", "start": "02:00", "end": "04:00"}]})
    late = NOW.replace(hour=23)
    assert occurrence(night.schedule[0], late) == (late.replace(hour=22), late.replace(hour=6) + timedelta(days=1))
    early = NOW.replace(hour=1)
    assert occurrence(night.schedule[0], early) == (early.replace(hour=22) - timedelta(days=1), early.replace(hour=6))
    t = due("acme", cur("awake", at=NOW - timedelta(days=1)), night, NOW.replace(hour=3))
    assert isinstance(t, Transition)
    assert (t.to_state, t.until) == ("deep", NOW.replace(hour=4))
    # the deep window ends inside the light one: the schedule's sleep goes on in light
    after = due("acme", cur("deep", reason="schedule", until=NOW.replace(hour=4)), night, NOW.replace(hour=4))
    assert isinstance(after, Transition)
    assert (after.to_state, after.until) == ("light", NOW.replace(hour=6))


def test_a_user_message_asks_to_wake_a_sleeping_tenant_with_the_same_id_each_time() -> None:
    asked = traffic_wake("acme", cur("deep"), POLICY, NOW)
    assert asked is not None
    assert (asked["event_id"], asked["to_state"], asked["reason"]) == (derive_id("t3", "traffic_wake"), "awake",
                                                                       "traffic_wake")
    assert traffic_wake("acme", cur("deep"), POLICY, NOW + timedelta(minutes=1))["event_id"] == asked["event_id"]
    assert traffic_wake("acme", cur("awake"), POLICY, NOW) is None
    assert traffic_wake("acme", None, POLICY, NOW) is None
    assert traffic_wake("acme", cur("light"), SleepPolicy(wake_on_traffic=False), NOW) is None


def test_current_reads_a_decoded_record_or_milliseconds() -> None:
    record = {"event_id": "e", "seq": 2, "to_state": "light", "reason": "manual", "until": 1_700_000_000_000,
              "occurred_at": NOW, "request_id": None}
    current = Current.of(record)
    assert current is not None
    assert current.until == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert current.asleep
    assert Current.of(None) is None
