"""The admin HTTP API: inspect and replay one tenant's outbox rows, behind scoped bearer tokens.

    GET  /admin/outbox               rows of a tenant (filters, cursor pagination)
    GET  /admin/outbox/stats         counts by status and topic
    POST /admin/outbox/replay        replay rows by id
    POST /admin/outbox/replay/tenant replay rows by filter (dry_run to preview)
    GET  /admin/dlq[/{id}], POST /admin/dlq/redrive[/filter]   dead letters (outbox.admin.dlq_api)
    GET/PUT /admin/brain/sleep_mode, /admin/brain/sleep_policy, POST /admin/util/sleep   sleep (outbox.admin.sleep_api)
    GET  /healthz                    alive (no token, no data)
    GET  /readyz                     database reachable and migrated (no token, no data)

Every /admin path needs ``Authorization: Bearer <token>`` (401 otherwise, checked before
routing and any request parsing or validation); a token scoped to other tenants gets 403 naming nothing of the
rows. Bad fields get 422 naming the field, in FastAPI's ``{"detail": [{"loc", "msg",
"type"}]}`` shape, without echoing the input. The OpenAPI schema is at /openapi.json.
"""

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, create_model
from sqlalchemy import Engine

from outbox.admin.auth import Principal, TokenRegistry
from outbox.admin.dlq import DeadLetters
from outbox.admin.dlq_api import dlq_router
from outbox.admin.filters import (
    CURSOR_PATTERN,
    DEFAULT_PAGE,
    MAX_PAGE,
    OutboxFilter,
    build_filter,
    check_tenant,
    decode_cursor,
)
from outbox.admin.live import LiveView
from outbox.admin.metrics import AdminMetrics, install_metrics
from outbox.admin.models import (
    ErrorOut,
    HealthOut,
    PageOut,
    ReplayByFilterIn,
    ReplayByIdsIn,
    ReplayOut,
    StatsOut,
    Tenant,
    Timestamp,
    ValidationOut,
)
from outbox.admin.queries import admin_db_errors, list_events, stats
from outbox.admin.replay import Replayer, ReplayResult
from outbox.admin.sleep import SleepService
from outbox.admin.sleep_api import sleep_router
from outbox.admin.util_sleep import UtilSleep
from outbox.errors import (
    AccessDenied,
    InvalidFilter,
    OutboxError,
    OutboxNotMigrated,
    RateLimited,
    ReplayRecordTooLarge,
    ReplayTooLarge,
    RowsNotFound,
    TransitionNotSeen,
)
from outbox.models import Status
from soma.clients import database_engine, redis_client
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.dlq.errors import DeadLetterNotFound, DlqError, InvalidDlqRequest, SelectionTooLarge
from soma.errors import InfrastructureUnavailable
from soma.observability.readiness import Readiness
from soma.settings import Settings

log = logging.getLogger("outbox.api")

UNAUTHORIZED = "missing or invalid bearer token"
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "A request body that cannot be parsed at all."},
    401: {"model": ErrorOut, "description": "No token, or not a configured one."},
    403: {"model": ErrorOut, "description": "The token's scope does not cover the tenant or rows."},
    422: {"model": ValidationOut, "description": "A malformed field; `loc` names it."},
    503: {"model": ErrorOut, "description": "The database or Kafka is unreachable, or the database not migrated."},
}


def _validation(location: str, field: str | None, message: str, kind: str = "value_error") -> JSONResponse:
    loc = [location] if field is None else [location, field]
    return JSONResponse(status_code=422, content={"detail": [{"loc": loc, "msg": message, "type": kind}]})


def _unauthorized() -> JSONResponse:
    return JSONResponse(status_code=401, content={"detail": UNAUTHORIZED}, headers={"WWW-Authenticate": "Bearer"})


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _plain(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """A handler answering `status` with the error's one-line message."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=status, content={"detail": str(exc)})

    return handler


def _install_error_handlers(app: FastAPI, registry: TokenRegistry, metrics: AdminMetrics) -> None:
    @app.middleware("http")
    async def authenticate_first(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Before routing, body parsing and validation: an anonymous caller learns nothing about
        # the request's shape (the route dependency then resolves the same token to a principal).
        path = request.url.path
        if not path.startswith("/admin"):
            return await call_next(request)
        started = time.perf_counter()
        if registry.authenticate(_bearer(request)) is None:
            metrics.authorization(request.method, path, "unauthenticated", time.perf_counter() - started)
            return _unauthorized()
        checked = time.perf_counter() - started  # the token check; the scope check is a set lookup
        response = await call_next(request)
        # Only a tenant outside the token's scope answers 403 (`AccessDenied`).
        metrics.authorization(request.method, path, "denied" if response.status_code == 403 else "allowed", checked)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = [
            {"loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
             "msg": str(error.get("msg", "invalid")), "type": str(error.get("type", "value_error"))}
            for error in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": items})

    async def invalid_field(request: Request, exc: Exception) -> JSONResponse:
        field, reason = getattr(exc, "field", None), str(getattr(exc, "reason", exc))
        return _validation("query" if request.method == "GET" else "body", field, reason)

    async def invalid_body(request: Request, exc: Exception) -> JSONResponse:
        return _validation("body", None, str(exc))

    for refused in (InvalidFilter, InvalidDlqRequest):  # a field of the request: 422 naming it
        app.add_exception_handler(refused, invalid_field)
    for too_much in (ReplayTooLarge, ReplayRecordTooLarge, SelectionTooLarge):  # the request as a whole: 422
        app.add_exception_handler(too_much, invalid_body)
    for failure, status in ((DeadLetterNotFound, 404), (RowsNotFound, 404), (DlqError, 409), (OutboxNotMigrated, 503)):
        app.add_exception_handler(failure, _plain(status))

    @app.exception_handler(AccessDenied)
    async def denied(request: Request, exc: AccessDenied) -> JSONResponse:
        actor = getattr(request.state, "actor", "?")
        log.warning("admin request refused (403): %s %s by %s", request.method, request.url.path, actor)
        return JSONResponse(status_code=403, content={"detail": str(exc)})

    @app.exception_handler(InfrastructureUnavailable)
    async def unavailable(request: Request, exc: InfrastructureUnavailable) -> JSONResponse:
        log.error("admin request failed: %s", exc)  # the address stays in the log, not the response
        service = next((name for name in ("kafka", "redis") if str(exc).startswith(f"{name}:")), "the database")
        return JSONResponse(status_code=503, content={"detail": f"{service} is unavailable"})

    @app.exception_handler(TransitionNotSeen)
    async def not_seen(request: Request, exc: TransitionNotSeen) -> JSONResponse:
        return JSONResponse(status_code=504, content={"detail": str(exc), "request_id": exc.request_id})

    @app.exception_handler(RateLimited)
    async def limited(request: Request, exc: RateLimited) -> JSONResponse:
        retry = str(max(1, math.ceil(exc.retry_after_s)))
        return JSONResponse(status_code=429, content={"detail": str(exc)}, headers={"Retry-After": retry})

    @app.exception_handler(OutboxError)
    async def conflict(request: Request, exc: OutboxError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})


def _replay_out(result: ReplayResult) -> ReplayOut:
    return ReplayOut.model_validate(asdict(result))


def create_app(settings: Settings, *, engine: Engine | None = None) -> FastAPI:
    """The admin API over `settings`' database. Raises `SettingsError` when no token is configured."""
    registry = TokenRegistry.from_settings(settings)
    catalog = load_catalog(settings=settings)
    topics = frozenset(catalog.topics)
    # The catalog's topics as an enum, so the OpenAPI schema says exactly which values are accepted.
    Topic = Literal[tuple(sorted(topics))]  # type: ignore[valid-type]
    FilterBody = create_model(
        "ReplayByFilterIn", __base__=ReplayByFilterIn,
        topic=(Topic | None, Field(None, description="Only this catalog topic.")),  # type: ignore[arg-type]
    )
    db = engine if engine is not None else database_engine(settings)
    codec = Codec(catalog, settings)
    replayer = Replayer(db, settings, catalog, codec)
    letters = DeadLetters(db, settings, catalog, codec)
    redis = redis_client(settings)
    sleep = SleepService(db, settings, catalog, codec, LiveView(settings, settings.admin.live_cache_s), redis)
    util = UtilSleep(db, settings, catalog, codec, sleep.admit)
    bearer = HTTPBearer(auto_error=False, scheme_name="AdminToken", description="A token of SOMA_ADMIN_TOKENS.")

    readiness = Readiness(settings, "admin-api", ("postgresql",), tables=("outbox_events",))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        readiness.close()
        letters.close()
        redis.close()
        if engine is None:
            db.dispose()

    app = FastAPI(
        title="Soma outbox admin API",
        version="1",
        description="Inspect and replay one tenant's transactional-outbox rows, inspect and redrive dead letters,"
        " read and change a tenant's cognitive sleep state and policy. Every replay, redrive and sleep change is"
        " audited.",
        lifespan=lifespan,
    )
    metrics = AdminMetrics()
    _install_error_handlers(app, registry, metrics)

    def principal(
        request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
    ) -> Principal:
        found = registry.authenticate(_bearer(request))  # the parsing the middleware used
        if found is None:
            raise HTTPException(status_code=401, detail=UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
        request.state.actor = found.actor  # for the 403 log line: a name, never the token
        return found

    Caller = Annotated[Principal, Depends(principal)]
    router = APIRouter(prefix="/admin/outbox", tags=["outbox"], responses=ERRORS)

    def scoped_filter(
        caller: Principal, tenant: str, status: str | None, topic: str | None,
        since: datetime | None, until: datetime | None,
    ) -> OutboxFilter:
        caller.require(check_tenant(tenant))  # scope before anything else about the tenant's rows
        return build_filter(tenant, status=status, topic=topic, since=since, until=until, known_topics=topics)

    # The query's filter fields, declared once for list and stats. The scope and filter checks are
    # deferred to the route: they run after FastAPI has validated every field of the request.
    async def filter_query(  # async: no I/O, so no thread hop
        tenant: Annotated[Tenant, Query()],
        status: Status | None = None,
        topic: Topic | None = None,  # type: ignore[valid-type]
        since: Timestamp | None = None,
        until: Timestamp | None = None,
    ) -> Callable[[Principal], OutboxFilter]:
        return lambda caller: scoped_filter(caller, tenant, status, topic, since, until)

    async def page_query(
        cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> tuple[str | None, int]:
        return cursor, limit

    Filter = Annotated[Callable[[Principal], OutboxFilter], Depends(filter_query)]

    @router.get("", response_model=PageOut, summary="List a tenant's outbox rows, by id")
    def list_rows(
        caller: Caller, checked: Filter, page_at: Annotated[tuple[str | None, int], Depends(page_query)]
    ) -> PageOut:
        flt = checked(caller)
        cursor, limit = page_at
        after = decode_cursor(cursor)
        with admin_db_errors(settings), db.connect() as conn:
            page = list_events(conn, flt, after_id=after, limit=limit)
        return PageOut.model_validate(
            {"tenant": flt.tenant, "items": [row.model_dump() for row in page.items], "next_cursor": page.next_cursor}
        )

    @router.get("/stats", response_model=StatsOut, summary="Counts by status and topic for a tenant")
    def row_stats(caller: Caller, checked: Filter) -> StatsOut:
        flt = checked(caller)
        with admin_db_errors(settings), db.connect() as conn:
            result = stats(conn, flt)
        return StatsOut.model_validate(asdict(result))

    @router.post(
        "/replay", response_model=ReplayOut, summary="Replay rows by id (one tenant, all or nothing)",
        responses={404: {"model": ErrorOut, "description": "Unknown ids (all-tenant tokens only)."}},
    )
    def replay_ids(caller: Caller, body: ReplayByIdsIn) -> ReplayOut:
        return _replay_out(replayer.by_ids(caller, body.ids, tenant=body.tenant, dry_run=body.dry_run))

    @router.post("/replay/tenant", response_model=ReplayOut, summary="Replay a tenant's rows by filter")
    def replay_filter(caller: Caller, body: FilterBody) -> ReplayOut:
        flt = scoped_filter(caller, body.tenant, body.status, body.topic, body.since, body.until)
        return _replay_out(replayer.by_filter(caller, flt, dry_run=body.dry_run))

    app.include_router(router)
    app.include_router(dlq_router(letters, Caller, Topic, ERRORS))
    app.include_router(sleep_router(sleep, util, Caller, ERRORS))
    app.state.sleep, app.state.util_sleep = sleep, util

    @app.get("/healthz", response_model=HealthOut, tags=["health"])
    def health() -> HealthOut:
        """Alive: the process answers (no dependency is checked)."""
        return HealthOut(status="ok")

    @app.get("/readyz", tags=["health"], responses={503: {"description": "A dependency is not ready."}})
    def ready() -> JSONResponse:
        """Ready: PostgreSQL reachable and migrated. Each check by name, with a one-line detail."""
        report = readiness.report()
        if report["ready"]:
            return JSONResponse(report)
        failed = "; ".join(f"{name}: {c['detail']}" for name, c in report["checks"].items() if not c["ok"])
        return JSONResponse(report | {"detail": f"not ready: {failed}"}, status_code=503)

    app.state.metrics = install_metrics(app, metrics)  # outermost: counts the requests authentication refuses too
    return app
