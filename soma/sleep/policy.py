"""Cognitive sleep: the states, a tenant's sleep policy (validated) and the parameters each state gives.

A policy says, per state, the values of the live parameters sleep changes: the integrator's
learning rate η (its EMA alpha) and temperature τ, the segmenter's dwell and drop threshold. A
value left out is inherited from the shallower state, and awake's come from the live settings.
Deeper sleep never raises η or τ (a policy saying otherwise is refused, naming the field), and in
deep and freeze η is 0: the integrator keeps emitting frames from its smoothed state but learns
nothing; in freeze it emits nothing. The policy is the tenant-scoped live setting ``SLEEP_POLICY``
(a JSON object on `config_updates`), so it is versioned and applied live like every other one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SleepStateName = Literal["awake", "light", "deep", "freeze"]
SleepReasonName = Literal["manual", "schedule", "ttl_wake", "traffic_wake", "circuit"]
STATES: tuple[SleepStateName, ...] = ("awake", "light", "deep", "freeze")  # shallow to deep
ASLEEP: tuple[SleepStateName, ...] = ("light", "deep", "freeze")
REASONS: tuple[SleepReasonName, ...] = ("manual", "schedule", "ttl_wake", "traffic_wake", "circuit")
MAX_TTL_S = 30 * 86400.0  # the longest `until` anyone may ask for
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def depth(state: str) -> int:
    """0 for awake .. 3 for freeze; ValueError naming the known states otherwise."""
    try:
        return STATES.index(state)
    except ValueError:
        raise ValueError(f"unknown sleep state {state!r} (known: {', '.join(STATES)})") from None


def redis_key(tenant: str) -> str:
    """Where the integrator caches a tenant's current SleepStateChanged (JSON) for readers."""
    return f"sleep:{tenant}"


class StateParams(BaseModel):
    """The parameters of one state; None inherits the shallower state's value (awake's: the live setting)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    eta: float | None = Field(None, ge=0, le=1, description="Integrator learning rate (EMA alpha).")
    temperature: float | None = Field(None, gt=0, le=1e6, description="Integrator softmax temperature.")
    dwell_frames: int | None = Field(None, ge=1, le=10_000, description="Segmenter dwell, in frames.")
    drop_threshold: float | None = Field(None, gt=0, le=1, description="Segmenter weight-drop threshold.")
    max_duration_s: float | None = Field(
        None, gt=0, le=MAX_TTL_S, description="Longest the tenant should stay in this state (the alert's limit)."
    )


class SleepWindow(BaseModel):
    """A daily window (UTC, HH:MM; an end before the start wraps past midnight) the tenant sleeps in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: Literal["light", "deep", "freeze"]
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"expected HH:MM (UTC, 00:00..23:59), got {value[:20]!r}")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> SleepWindow:
        if self.start == self.end:
            raise ValueError("start and end are equal: the window is empty")
        return self

    def minutes(self) -> tuple[int, int]:
        def of(clock: str) -> int:
            return int(clock[:2]) * 60 + int(clock[3:])

        return of(self.start), of(self.end)

    def contains(self, minute_of_day: int) -> bool:
        start, end = self.minutes()
        return start <= minute_of_day < end if start < end else minute_of_day >= start or minute_of_day < end


class SleepPolicy(BaseModel):
    """One tenant's sleep policy (the ``SLEEP_POLICY`` live setting)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    awake: StateParams = StateParams()
    light: StateParams = StateParams(eta=0.1)
    deep: StateParams = StateParams(eta=0.0)
    freeze: StateParams = StateParams(eta=0.0)
    schedule: list[SleepWindow] = Field(default_factory=list, max_length=24)
    wake_on_traffic: bool = Field(True, description="A user chat message wakes a sleeping tenant.")
    circuit_sleep: bool = Field(False, description="A tenant whose relay circuit is open sleeps light until it closes.")
    default_ttl_s: float | None = Field(
        None, gt=0, le=MAX_TTL_S, description="How long a manual sleep lasts when the request gives no until."
    )

    @model_validator(mode="after")
    def _monotonic(self) -> SleepPolicy:
        for state in ("deep", "freeze"):
            eta = self.params(state).eta
            if eta not in (None, 0.0):
                raise ValueError(f"{state}.eta must be 0 (deep and freeze learn nothing), got {eta}")
        for name in ("eta", "temperature"):
            held: tuple[str, float] | None = None
            for state in STATES:
                value = getattr(self.params(state), name)
                if value is None:
                    continue
                if held is not None and value > held[1]:
                    raise ValueError(
                        f"{state}.{name}: {value} is above {held[0]}'s {held[1]} (deeper sleep never raises η or τ)"
                    )
                held = (state, value)
        return self

    def params(self, state: str) -> StateParams:
        depth(state)
        result: StateParams = getattr(self, state)
        return result

    def scheduled_state(self, minute_of_day: int) -> SleepStateName | None:
        """The deepest state a schedule window puts the tenant in at this minute (UTC), or None."""
        states: list[SleepStateName] = [w.state for w in self.schedule if w.contains(minute_of_day)]
        return max(states, key=STATES.index) if states else None


@dataclass(frozen=True)
class Effective:
    """The values a state gives the streams (what SleepStateChanged.params records)."""

    eta: float
    temperature: float
    dwell_frames: int
    drop_threshold: float
    emits_frames: bool

    def to_record(self) -> dict[str, float | int | bool]:
        return {"eta": self.eta, "temperature": self.temperature, "dwell_frames": self.dwell_frames,
                "drop_threshold": self.drop_threshold, "emits_frames": self.emits_frames}


def effective(policy: SleepPolicy, state: str, live: Effective) -> Effective:
    """The parameters of `state`: the policy's values, inherited down from awake (the live ones).

    η and τ never rise with depth even when the live awake values are below the policy's (the
    shallower value wins), and deep and freeze have η = 0.
    """
    current = live
    for name in STATES[: depth(state) + 1]:
        step = policy.params(name)
        eta = step.eta if step.eta is not None else current.eta
        temperature = step.temperature if step.temperature is not None else current.temperature
        if name != "awake":
            eta, temperature = min(eta, current.eta), min(temperature, current.temperature)
        current = Effective(
            eta=0.0 if name in ("deep", "freeze") else eta,
            temperature=temperature,
            dwell_frames=step.dwell_frames if step.dwell_frames is not None else current.dwell_frames,
            drop_threshold=step.drop_threshold if step.drop_threshold is not None else current.drop_threshold,
            emits_frames=name != "freeze",
        )
    return current
