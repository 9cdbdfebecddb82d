"""Sleep transitions, decided purely (docs/sleep.md): who may move a tenant to which state, and when.

`decide(request, current, policy, now)` answers a SleepRequest with the transition to write on
`cog.sleep`, or `Ignored(why)`; a request that can never be valid raises `BadRequest` (the caller
dead-letters it). `due(tenant, current, policy, now)` is the integrator's timer: the TTL wake
once `until` has passed, and the policy's schedule windows entered and left. Every transition's
event id is derived from its cause (the request, or the current transition), and its seq is the
current one + 1, so a repeated decision writes the same record, which every applier ignores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from soma.contracts.ids import derive_id
from soma.sleep.policy import ASLEEP, MAX_TTL_S, STATES, SleepPolicy, SleepWindow, depth
from streams.errors import InvalidInput

OWN_REASONS = ("ttl_wake", "schedule")  # written by the integrator's timer only, never asked for


class BadRequest(InvalidInput):
    """A sleep request that is wrong in itself (dead-lettered with this message)."""


def _when(value: Any) -> datetime | None:
    """A decoded timestamp-millis (datetime, or milliseconds) as an aware datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


@dataclass(frozen=True)
class Current:
    """A tenant's current sleep state: its latest SleepStateChanged."""

    event_id: str
    seq: int
    state: str
    reason: str
    until: datetime | None
    occurred_at: datetime
    request_id: str | None = None

    @classmethod
    def of(cls, record: Mapping[str, Any] | None) -> Current | None:
        if record is None:
            return None
        return cls(str(record["event_id"]), int(record["seq"]), str(record["to_state"]), str(record["reason"]),
                   _when(record.get("until")), _when(record["occurred_at"]) or datetime.now(UTC),
                   record.get("request_id"))

    @property
    def asleep(self) -> bool:
        return self.state in ASLEEP


@dataclass(frozen=True)
class Transition:
    event_id: str
    seq: int
    from_state: str
    to_state: str
    reason: str
    until: datetime | None
    requested_by: str
    request_id: str | None = None


@dataclass(frozen=True)
class Ignored:
    why: str  # a bounded label: disabled, duplicate, no_change, not_asleep, wake_on_traffic_off, ...


def _transition(current: Current | None, event_id: str, to_state: str, reason: str, until: datetime | None,
                requested_by: str, request_id: str | None = None) -> Transition:
    return Transition(event_id, (current.seq if current else 0) + 1, current.state if current else "awake",
                      to_state, reason, until, requested_by, request_id)


def _state_of(current: Current | None) -> str:
    return current.state if current else "awake"


def decide(request: Mapping[str, Any], current: Current | None, policy: SleepPolicy, now: datetime, *,
           enabled: bool = True) -> Transition | Ignored:
    """The transition a SleepRequest asks for, or why nothing happens; `BadRequest` for an invalid one."""
    to_state, reason = str(request["to_state"]), str(request["reason"])
    depth(to_state)  # the schema's enum already holds it; a hand-built record names the known states
    until = _when(request.get("until"))
    if reason in OWN_REASONS:
        raise BadRequest(f"reason {reason!r} is the integrator's own; ask with manual, traffic_wake or circuit")
    if until is not None and until <= now:
        raise BadRequest(f"until {until.isoformat()} is not in the future")
    if to_state == "awake" and until is not None:
        raise BadRequest("until: awake has no until (it is when a sleeping tenant wakes)")
    if not enabled:
        return Ignored("disabled")
    request_id = str(request["event_id"])
    if current is not None and current.request_id == request_id:
        return Ignored("duplicate")  # a redelivered request already applied
    state = _state_of(current)
    if reason == "traffic_wake":
        if to_state != "awake":
            raise BadRequest(f"to_state: traffic_wake asks for awake, not {to_state}")
        if state == "awake":
            return Ignored("not_asleep")
        if not policy.wake_on_traffic:
            return Ignored("wake_on_traffic_off")
    elif reason == "circuit":
        if to_state == "light":
            if state != "awake":
                return Ignored("not_awake")
            if not policy.circuit_sleep:
                return Ignored("circuit_sleep_off")
        elif to_state == "awake":
            if current is None or current.reason != "circuit" or state == "awake":
                return Ignored("not_circuit")
        else:
            raise BadRequest(f"to_state: a circuit request asks for light or awake, not {to_state}")
    elif to_state != "awake" and until is None and policy.default_ttl_s is not None:
        until = now + timedelta(seconds=policy.default_ttl_s)
    if until is not None:
        until = min(until, now + timedelta(seconds=MAX_TTL_S))
    if state == to_state and (current.until if current else None) == until:
        return Ignored("no_change")
    return _transition(current, derive_id(request_id, "sleep"), to_state, reason, until,
                       str(request.get("requested_by") or "?"), request_id)


def occurrence(window: SleepWindow, now: datetime) -> tuple[datetime, datetime]:
    """The start and end of the window's daily occurrence containing `now` (or starting today)."""
    start_min, end_min = window.minutes()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    minute = now.hour * 60 + now.minute
    if start_min > end_min and minute < end_min:  # wraps past midnight: the occurrence began yesterday
        day -= timedelta(days=1)
    start = day + timedelta(minutes=start_min)
    end = day + timedelta(minutes=end_min) + (timedelta(days=1) if start_min > end_min else timedelta())
    return start, end


def active_window(policy: SleepPolicy, now: datetime) -> tuple[SleepWindow, datetime, datetime] | None:
    """The deepest schedule window containing `now`, with its occurrence's start and end."""
    minute = now.hour * 60 + now.minute
    found = [w for w in policy.schedule if w.contains(minute)]
    if not found:
        return None
    window = max(found, key=lambda w: STATES.index(w.state))
    return (window, *occurrence(window, now))


def due(tenant: str, current: Current | None, policy: SleepPolicy, now: datetime) -> Transition | None:
    """The transition the clock makes now, if any.

    - asleep and `until` passed: a schedule's sleep ends into the next window (or awake, reason
      schedule); any other wakes (ttl_wake);
    - awake, inside a schedule window, and no transition since the window began: the window's state
      until its end (reason schedule). A tenant woken by hand inside a window stays awake.
    """
    window = active_window(policy, now)
    if current is not None and current.asleep:
        if current.until is None or current.until > now:
            return None
        if current.reason != "schedule":
            return _transition(current, derive_id(current.event_id, "ttl_wake"), "awake", "ttl_wake", None, "ttl")
        if window is not None:
            return _transition(current, derive_id(current.event_id, "schedule_end"), window[0].state, "schedule",
                               window[2], "schedule")
        return _transition(current, derive_id(current.event_id, "schedule_end"), "awake", "schedule", None,
                           "schedule")
    if window is None:
        return None
    state, start, end = window[0].state, window[1], window[2]
    if current is not None and current.occurred_at >= start:
        return None
    cause = current.event_id if current is not None else f"sleep:{tenant}"
    return _transition(current, derive_id(cause, f"schedule:{start.isoformat()}"), state, "schedule", end,
                       "schedule")


def traffic_wake(tenant: str, current: Current | None, policy: SleepPolicy, now: datetime) -> dict[str, Any] | None:
    """The SleepRequest a user's chat message makes for a sleeping tenant whose policy wakes on traffic.

    Its id comes from the current transition, so every message while the tenant sleeps asks the same."""
    if current is None or not current.asleep or not policy.wake_on_traffic:
        return None
    return {"event_id": derive_id(current.event_id, "traffic_wake"), "tenant_id": tenant, "occurred_at": now,
            "to_state": "awake", "reason": "traffic_wake", "until": None, "requested_by": "traffic"}
