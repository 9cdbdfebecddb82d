"""A tenant's cognitive sleep from the admin side: its state and policy, read and changed.

Shared by the HTTP API (outbox.admin.sleep_api) and `soma sleep` (outbox.admin.sleep_cli):

- state: the integrator owns every transition (cog.sleep) and caches the latest one as JSON in
  Redis `sleep:{tenant}`; it is read from there (nothing recorded: awake, seq 0). A change is a
  SleepRequest on cog.sleep_requests, written through the outbox in the same transaction as its
  audit row and AdminAudit event, so the request exists exactly when its audit does; the
  integrator decides it. Waiting for it polls Redis until the transition naming the request shows.
- policy: the tenant's `SLEEP_POLICY` live setting (tenant override, else global, else default)
  with its config_updates version; a change is validated, published as a tenant-scoped
  ConfigUpdate (`soma.config_updates.publish`, the code of `soma config set`) and audited.

Every call needs the tenant in the caller's scope and ENABLE_SLEEP on for it (`SleepDisabled`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Engine

from outbox.admin.audit import AuditEntry, emit_audited, new_event_id, now_ms, record
from outbox.admin.auth import Principal
from outbox.admin.live import LiveView
from outbox.admin.models import Timestamp
from outbox.admin.queries import admin_db_errors
from outbox.errors import InvalidFilter, SleepDisabled, TransitionNotSeen
from soma.contracts.catalog import Catalog
from soma.contracts.codec import Codec
from soma.errors import InfrastructureUnavailable
from soma.settings import Settings, env_name
from soma.settings.values import parse_duration
from soma.sleep.policy import MAX_TTL_S, SleepStateName, redis_key

REQUEST_TOPIC = "cog.sleep_requests"
POLL_S = 0.1  # between two looks at Redis while waiting for a transition
MAX_WAIT_S = 3600.0  # the most a request may ask to wait (the setting caps it lower)
_POLICY_PATH = re.compile(r"^((?:awake|light|deep|freeze)\.[a-z_]+)\b")


def enable_hint(tenant: str) -> str:
    return (f"sleep is off for tenant {tenant}: turn it on with `soma config set ENABLE_SLEEP true --tenant {tenant}`"
            f" (the live setting ENABLE_SLEEP, default off)")


class SleepModeIn(BaseModel):
    """A change of a tenant's sleep state (PUT /admin/brain/sleep_mode, `soma sleep set`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    state: SleepStateName = Field(description="awake, light, deep or freeze.")
    for_: str | None = Field(
        None, alias="for", min_length=1, max_length=40,
        description="How long to stay, e.g. 30m, 1h30m, 90s (at most 30d); wakes by itself after it (ttl_wake).",
    )
    until: Timestamp | None = Field(None, description="When to wake (ISO-8601, no zone = UTC; within 30 days).")
    wait_s: float = Field(
        0.0, ge=0, le=MAX_WAIT_S, allow_inf_nan=False,
        description="Wait up to this long (capped by SOMA_ADMIN_SLEEP_WAIT_MAX_S) for the integrator's transition.",
    )

    @field_validator("for_")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is None:
            return None
        seconds = parse_duration(value)
        if seconds is None:
            raise ValueError("expected a duration such as 30m, 1h30m or 90s, got 'off'")
        if seconds > MAX_TTL_S:
            raise ValueError(f"at most 30d, got {value[:40]!r}")
        return value

    @model_validator(mode="after")
    def _one_limit(self) -> SleepModeIn:
        if self.for_ is not None and self.until is not None:
            raise ValueError("give `for` or `until`, not both")
        if self.state == "awake" and (self.for_ is not None or self.until is not None):
            raise ValueError("awake has no `for` or `until`: it lasts until the next sleep")
        return self

    def resolve_until(self, now: datetime) -> datetime | None:
        """The absolute wake time (millisecond precision, UTC), or None; `InvalidFilter` naming the field."""
        if self.for_ is not None:
            seconds = parse_duration(self.for_) or 0.0
            return _ms(now + timedelta(seconds=seconds))
        if self.until is None:
            return None
        until = self.until if self.until.tzinfo is not None else self.until.replace(tzinfo=UTC)
        if until <= now:
            raise InvalidFilter("until", f"{until.isoformat()} is not in the future")
        if until - now > timedelta(seconds=MAX_TTL_S):
            raise InvalidFilter("until", "at most 30 days from now")
        return _ms(until.astimezone(UTC))


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def state_view(tenant: str, raw: bytes | str | None) -> dict[str, Any]:
    """The state answer from the integrator's cached SleepStateChanged JSON (None: nothing recorded, awake)."""
    if raw is None:
        return {"tenant": tenant, "state": "awake", "seq": 0, "recorded": False, "from_state": None, "reason": None,
                "since": None, "until": None, "requested_by": None, "request_id": None, "params": None,
                "policy_version": 0}
    try:
        event = json.loads(raw)
        return {"tenant": tenant, "state": str(event["to_state"]), "seq": int(event["seq"]), "recorded": True,
                "from_state": event.get("from_state"), "reason": event.get("reason"),
                "since": event.get("occurred_at"), "until": event.get("until"),
                "requested_by": event.get("requested_by"), "request_id": event.get("request_id"),
                "params": event.get("params"), "policy_version": int(event.get("policy_version") or 0)}
    except (ValueError, KeyError, TypeError) as exc:
        raise InfrastructureUnavailable(f"redis: {redis_key(tenant)} holds no readable sleep state ({exc})") from None


def policy_error(message: str) -> tuple[str, str]:
    """(field, reason) of a SLEEP_POLICY validation message; the policy-wide rules name their field in the reason
    (``SLEEP_POLICY: deep.eta must be 0`` -> ``SLEEP_POLICY.deep.eta``)."""
    field, _, reason = message.partition(": ")
    named = _POLICY_PATH.match(reason) if field == "SLEEP_POLICY" else None
    if named is not None:
        return f"{field}.{named.group(1)}", reason[named.end():].lstrip(": ")
    return field, reason


@dataclass(frozen=True)
class SleepRequested:
    request_id: str
    tenant: str
    state: str
    until: datetime | None
    audit_event_id: str


class SleepService:
    def __init__(self, engine: Engine, settings: Settings, catalog: Catalog, codec: Codec, live: LiveView,
                 redis: Any) -> None:
        self.engine, self.settings, self.catalog, self.codec = engine, settings, catalog, codec
        self.live, self.redis = live, redis

    # --- the gate -----------------------------------------------------------------------------
    def admit(self, principal: Principal, tenant: str) -> None:
        """The tenant in the caller's scope (else `AccessDenied`), and ENABLE_SLEEP on for it (else `SleepDisabled`)."""
        principal.require(tenant)
        if not self.live.get("enable_sleep", tenant).value:
            raise SleepDisabled(enable_hint(tenant))

    # --- state --------------------------------------------------------------------------------
    def _raw_state(self, tenant: str) -> bytes | None:
        from redis import RedisError

        try:
            raw: bytes | None = self.redis.get(redis_key(tenant))
        except RedisError as exc:
            raise InfrastructureUnavailable(f"redis: cannot read {redis_key(tenant)}: {exc} "
                                            f"({env_name('redis_url')})") from None
        return raw

    def current(self, principal: Principal, tenant: str) -> dict[str, Any]:
        self.admit(principal, tenant)
        return state_view(tenant, self._raw_state(tenant))

    def request(self, principal: Principal, tenant: str, change: SleepModeIn) -> SleepRequested:
        """Write the SleepRequest (outbox) and its audit in one transaction; the integrator decides it."""
        self.admit(principal, tenant)
        now = now_ms()
        until = change.resolve_until(now)
        request_id = new_event_id()
        event = {"event_id": request_id, "tenant_id": tenant, "occurred_at": now, "to_state": change.state,
                 "reason": "manual", "until": until, "requested_by": principal.actor}
        entry = AuditEntry(principal.actor, "sleep_mode_set", tenant, "requested", details={
            "request_id": request_id, "state": change.state, "until": until.isoformat() if until else None})
        emit_audited(self.engine, REQUEST_TOPIC, event, entry, dedupe_key=f"sleep:{request_id}",
                     catalog=self.catalog, codec=self.codec, settings=self.settings)
        return SleepRequested(request_id, tenant, change.state, until, entry.event_id)

    def wait_s(self, asked_s: float) -> float:
        return min(asked_s, self.settings.admin.sleep_wait_max_s)

    def wait(self, tenant: str, request_id: str, wait_s: float) -> dict[str, Any]:
        """The transition the integrator made for `request_id`, polling Redis up to `wait_s` (capped)."""
        limit = self.wait_s(wait_s)
        deadline = time.monotonic() + limit
        while True:
            view = state_view(tenant, self._raw_state(tenant))
            if view["request_id"] == request_id:
                return view
            if time.monotonic() >= deadline:
                raise TransitionNotSeen(
                    f"sleep request {request_id} for tenant {tenant} was written, but no transition for it showed"
                    f" within {limit:g}s: the integrator may be down or behind, or decided it changes nothing"
                    f" (same state and until); the current state is at GET /admin/brain/sleep_mode", request_id)
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    # --- policy -------------------------------------------------------------------------------
    def policy(self, principal: Principal, tenant: str) -> dict[str, Any]:
        self.admit(principal, tenant)
        found = self.live.get("sleep_policy", tenant)
        return {"tenant": tenant, "policy": found.value.model_dump(mode="json"), "version": found.version,
                "scope": found.scope}

    def set_policy(self, principal: Principal, tenant: str, text: str) -> dict[str, Any]:
        """Validate `text` (a JSON object), publish it for `tenant` on config_updates, audit it."""
        from soma.config_updates import publish
        from soma.errors import EventValidationError
        from soma.live_config import check_value

        self.admit(principal, tenant)
        try:
            check_value("sleep_policy", text)
        except ValueError as exc:
            raise InvalidFilter(*policy_error(str(exc))) from None
        try:
            event = publish(self.settings, "SLEEP_POLICY", text, tenant=tenant, author=principal.actor)
        except EventValidationError as exc:  # checked above; kept for a value publish itself refuses
            raise InvalidFilter("SLEEP_POLICY", str(exc)) from None
        self.live.invalidate()
        entry = AuditEntry(principal.actor, "sleep_policy_set", tenant, "published", details={
            "version": event["version"], "config_event_id": event["event_id"], "checksum": event["checksum"]})
        with admin_db_errors(self.settings), self.engine.begin() as conn:
            record(conn, entry, catalog=self.catalog, codec=self.codec, settings=self.settings)
        return {"tenant": tenant, "version": int(event["version"]), "policy": json.loads(event["value"]),
                "config_event_id": event["event_id"], "audit_event_id": entry.event_id}
