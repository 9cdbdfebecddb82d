"""The admin API's sleep routes (mounted by outbox.admin.api under the same tokens and scopes).

    GET  /admin/brain/sleep_mode?tenant=T     the tenant's sleep state (the integrator's latest transition)
    PUT  /admin/brain/sleep_mode?tenant=T     ask for a state: 202 with the request id, or 200 with the transition
    GET  /admin/brain/sleep_policy?tenant=T   the tenant's effective SLEEP_POLICY and its version
    PUT  /admin/brain/sleep_policy?tenant=T   validate and publish a tenant-scoped SLEEP_POLICY
    POST /admin/util/sleep?tenant=T           a capped wait: here (sync) or as the `sleep` tool (async, 202)

Every route answers 409 naming the setting when ENABLE_SLEEP is off for the tenant (outbox.admin.sleep).
"""

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException  # what FastAPI raises for a body it cannot parse

from outbox.admin.models import ErrorOut, Tenant
from outbox.admin.sleep import SleepModeIn, SleepService
from outbox.admin.util_sleep import UtilSleep, UtilSleepIn
from outbox.errors import InvalidFilter
from soma.sleep.policy import SleepPolicy

POLICY_MAX_BYTES = 65_536  # what soma.live_config.check_value accepts for an object setting
BODY_MAX_BYTES = POLICY_MAX_BYTES  # any sleep route's body (the others' are a few fields)


class SleepStateOut(BaseModel):
    tenant: str
    state: str = Field(description="awake, light, deep or freeze.")
    seq: int = Field(description="The tenant's transition number (0: nothing recorded yet, awake).")
    recorded: bool = Field(description="False: no transition was ever cached for the tenant (awake).")
    from_state: str | None
    reason: str | None = Field(description="manual, schedule, ttl_wake, traffic_wake or circuit.")
    since: str | None = Field(description="When the state was entered (ISO-8601 UTC).")
    until: str | None = Field(description="When the tenant wakes by itself; null: no limit.")
    requested_by: str | None
    request_id: str | None = Field(description="The SleepRequest the transition answered (null: the integrator's own).")
    params: dict[str, Any] | None = Field(description="The state's effective eta, temperature, dwell, threshold.")
    policy_version: int


class SleepRequestOut(BaseModel):
    request_id: str = Field(description="event_id of the SleepRequest on cog.sleep_requests.")
    tenant: str
    state: str
    until: str | None
    audit_event_id: str
    waited_s: float | None = Field(None, description="How long it waited for the transition (wait_s > 0).")
    transition: SleepStateOut | None = Field(None, description="The integrator's transition (200 only).")


class TransitionNotSeenOut(BaseModel):
    detail: str
    request_id: str = Field(description="The request that was written (it may still be decided later).")


class SleepPolicyOut(BaseModel):
    tenant: str
    policy: dict[str, Any] = Field(description="The effective SLEEP_POLICY (every field, defaults included).")
    version: int = Field(description="config_updates version of the value (0: the configured default).")
    scope: str = Field(description="tenant (its own override), global or default.")


class SleepPolicySetOut(BaseModel):
    tenant: str
    version: int
    policy: dict[str, Any] = Field(description="The fields published (as given, validated).")
    config_event_id: str
    audit_event_id: str


class UtilSleepOut(BaseModel):
    mode: str = Field(description="sync (waited here) or async (the `sleep` tool runs it).")
    requested_ms: int
    seconds: float = Field(description="What is slept: ms capped by SOMA_ADMIN_UTIL_SLEEP_MAX_S.")
    capped: bool
    waited_ms: int | None = Field(None, description="sync: what the request waited, measured.")
    call_id: str | None = Field(None, description="async: the ToolResult on tool.results carries it.")
    session_id: str | None = None
    request_event_id: str | None = Field(None, description="async: the ToolRequest's event_id.")
    results_topic: str | None = None
    audit_event_id: str | None = None


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its `$defs` references inlined (OpenAPI keeps no `$defs` in a request body)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        return [resolve(item) for item in node] if isinstance(node, list) else node

    return dict(resolve(schema))


def _body_error(message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body",), "msg": message, "type": "value_error"}])


class SleepRoute(APIRoute):
    """A model body declared larger than BODY_MAX_BYTES, or one FastAPI cannot parse at all (not UTF-8, nested
    too deeply for the parser: its 400), is a 422 naming the body like any other bad input."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            declared = request.headers.get("content-length", "0")
            if self.body_field is not None and (not declared.isdigit() or int(declared) > BODY_MAX_BYTES):
                raise _body_error(f"the body is larger than {BODY_MAX_BYTES} bytes")  # (the policy's: streamed)
            try:
                return await handler(request)
            except HTTPException as exc:
                if exc.status_code != 400:  # FastAPI's "There was an error parsing the body"
                    raise
                raise _body_error("not parseable JSON: not UTF-8 text, or nested too deeply") from None

        return route


async def _policy_text(request: Request) -> str:
    """The body as text, read up to the limit (more is refused without reading it all)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > POLICY_MAX_BYTES:
            raise InvalidFilter("SLEEP_POLICY", f"the body is larger than {POLICY_MAX_BYTES} bytes")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFilter("SLEEP_POLICY", f"not UTF-8 text (byte {exc.start})") from None


def sleep_router(service: SleepService, util: UtilSleep, caller: Any,
                 errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    """The routes over `service` and `util`; `caller` is the app's principal dependency (an Annotated type)."""
    disabled: dict[int | str, dict[str, Any]] = {
        409: {"model": ErrorOut,
              "description": "ENABLE_SLEEP is off for the tenant (the answer says how to turn it on)."},
    }
    router = APIRouter(tags=["sleep"], responses=errors | disabled, route_class=SleepRoute)
    TenantQuery = Annotated[Tenant, Query(description="The tenant.")]

    @router.get("/admin/brain/sleep_mode", response_model=SleepStateOut, summary="A tenant's sleep state")
    def show_mode(principal: caller, tenant: TenantQuery) -> SleepStateOut:
        return SleepStateOut.model_validate(service.current(principal, tenant))

    @router.put(
        "/admin/brain/sleep_mode", status_code=202, response_model=SleepRequestOut,
        summary="Ask for a sleep state (audited); with wait_s, wait for the integrator's transition",
        responses={200: {"model": SleepRequestOut, "description": "wait_s > 0: the transition showed in time."},
                   504: {"model": TransitionNotSeenOut,
                         "description": "The request was written but no transition for it showed within wait_s."}},
    )
    def set_mode(principal: caller, tenant: TenantQuery, body: SleepModeIn) -> JSONResponse:
        requested = service.request(principal, tenant, body)
        out = SleepRequestOut(
            request_id=requested.request_id, tenant=tenant, state=requested.state,
            until=requested.until.isoformat() if requested.until else None, audit_event_id=requested.audit_event_id,
        )
        if body.wait_s <= 0:
            return JSONResponse(out.model_dump(mode="json"), status_code=202)
        started = time.monotonic()
        transition = service.wait(tenant, requested.request_id, body.wait_s)
        out.waited_s, out.transition = round(time.monotonic() - started, 3), SleepStateOut.model_validate(transition)
        return JSONResponse(out.model_dump(mode="json"), status_code=200)

    @router.get("/admin/brain/sleep_policy", response_model=SleepPolicyOut,
                summary="A tenant's effective sleep policy and its version")
    def show_policy(principal: caller, tenant: TenantQuery) -> SleepPolicyOut:
        return SleepPolicyOut.model_validate(service.policy(principal, tenant))

    policy_schema = _inline(SleepPolicy.model_json_schema())
    policy_body = {"requestBody": {"required": True, "description": "The SLEEP_POLICY JSON object (docs/sleep.md);"
                                   " at most 64 KiB, nested at most 8 deep.",
                                   "content": {"application/json": {"schema": policy_schema}}}}

    @router.put("/admin/brain/sleep_policy", response_model=SleepPolicySetOut, openapi_extra=policy_body,
                summary="Validate and publish a tenant's sleep policy (config_updates, audited)")
    async def set_policy(principal: caller, tenant: TenantQuery, request: Request) -> SleepPolicySetOut:
        text = await _policy_text(request)
        result = await run_in_threadpool(service.set_policy, principal, tenant, text)  # Kafka and PostgreSQL
        return SleepPolicySetOut.model_validate(result)

    @router.post(
        "/admin/util/sleep", response_model=UtilSleepOut, summary="Sleep (capped): here, or as the `sleep` tool",
        responses={202: {"model": UtilSleepOut, "description": "async: the ToolRequest is written (outbox)."},
                   429: {"model": ErrorOut, "description": "Over the token's rate; `Retry-After` says when to retry."}},
    )
    async def util_sleep(principal: caller, tenant: TenantQuery, body: UtilSleepIn) -> JSONResponse:
        planned = await run_in_threadpool(util.plan, principal, tenant, body.ms)  # may read config_updates
        if body.async_:
            call = await run_in_threadpool(util.emit, principal, tenant, planned)
            out = UtilSleepOut(mode="async", requested_ms=body.ms, results_topic="tool.results",
                               **{k: v for k, v in asdict(call).items() if k in UtilSleepOut.model_fields})
            return JSONResponse(out.model_dump(mode="json"), status_code=202)
        started = time.monotonic()
        await asyncio.sleep(planned.seconds)  # holds no thread while it waits
        out = UtilSleepOut(mode="sync", requested_ms=body.ms, seconds=planned.seconds, capped=planned.capped,
                           waited_ms=round((time.monotonic() - started) * 1000))
        return JSONResponse(out.model_dump(mode="json"), status_code=200)

    return router
