"""POST /admin/util/sleep: a capped wait, here (sync) or as the tools stream's built-in `sleep` tool (async).

Sync waits min(ms, SOMA_ADMIN_UTIL_SLEEP_MAX_S) in the request and reports what it waited. Async
writes a ToolRequest for `sleep` (``{"seconds": ...}``) on tool.requests through the outbox, with
its audit row in the same transaction, and answers at once; the tools stream runs it and its
ToolResult (same call_id) arrives on tool.results. The calls of a tenant use one session id
(`SESSION_ID`), which no chat session has, so the worker folds none of the results into a
conversation. Calls are rate-limited per token (`TokenBuckets`: RateLimited, HTTP 429).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from outbox.admin.audit import AuditEntry, emit_audited, new_event_id, now_ms
from outbox.admin.auth import Principal
from outbox.admin.ratelimit import TokenBuckets
from outbox.errors import RateLimited
from soma.contracts.catalog import Catalog
from soma.contracts.codec import Codec
from soma.settings import Settings

TOOL_TOPIC = "tool.requests"
SESSION_ID = "admin-util-sleep"
MAX_MS = 3_600_000  # the largest `ms` accepted at all (the setting caps the wait lower)
TIMEOUT_GRACE_MS = 5_000  # the tool's own timeout: its sleep plus this


class UtilSleepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ms: int = Field(ge=0, le=MAX_MS, strict=True, description="How long to sleep, in milliseconds (capped).")
    async_: bool = Field(False, alias="async", strict=True,
                         description="Answer at once (202) and run the `sleep` tool on the tools stream.")


@dataclass(frozen=True)
class Planned:
    seconds: float  # what will be slept
    capped: bool  # ms was above the cap


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    request_event_id: str
    session_id: str
    seconds: float
    capped: bool
    audit_event_id: str


class UtilSleep:
    def __init__(self, engine: Engine, settings: Settings, catalog: Catalog, codec: Codec,
                 admit: Callable[[Principal, str], None], buckets: TokenBuckets | None = None) -> None:
        self.engine, self.settings, self.catalog, self.codec = engine, settings, catalog, codec
        self._admit = admit
        admin = settings.admin
        self.buckets = buckets or TokenBuckets(admin.util_sleep_rate_per_s, admin.util_sleep_burst)

    def plan(self, principal: Principal, tenant: str, ms: int) -> Planned:
        """Scope, ENABLE_SLEEP, then the caller's rate; what will be slept (capped)."""
        self._admit(principal, tenant)
        wait = self.buckets.take(principal.actor)
        if wait > 0:
            rate = self.settings.admin.util_sleep_rate_per_s
            raise RateLimited(f"too many util sleep calls for this token (at most {rate:g}/s, burst "
                              f"{self.settings.admin.util_sleep_burst}): retry in {math.ceil(wait)}s", wait)
        cap_ms = self.settings.admin.util_sleep_max_s * 1000
        return Planned(min(ms, cap_ms) / 1000.0, ms > cap_ms)

    def emit(self, principal: Principal, tenant: str, planned: Planned) -> ToolCall:
        """The `sleep` ToolRequest through the outbox, audited in the same transaction."""
        call_id, now = f"sleep-{new_event_id()}", now_ms()
        entry = AuditEntry(principal.actor, "util_sleep", tenant, "requested",
                           details={"call_id": call_id, "seconds": planned.seconds})
        event: dict[str, Any] = {
            "event_id": new_event_id(), "tenant_id": tenant, "occurred_at": now, "session_id": SESSION_ID,
            "call_id": call_id, "tool": "sleep", "arguments_json": json.dumps({"seconds": planned.seconds}),
            "timeout_ms": int(planned.seconds * 1000) + TIMEOUT_GRACE_MS,
            "requested_by": entry.event_id,  # the AdminAudit event that explains the call
        }
        emit_audited(self.engine, TOOL_TOPIC, event, entry, dedupe_key=f"util-sleep:{call_id}",
                     catalog=self.catalog, codec=self.codec, settings=self.settings)
        return ToolCall(call_id, event["event_id"], SESSION_ID, planned.seconds, planned.capped, entry.event_id)
