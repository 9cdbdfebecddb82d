"""Prometheus metrics of the admin API: requests by route template, method and status, and latency;
authorization decisions (`soma_auth_decisions_total`, `soma_auth_duration_seconds`) by operation.

`install_metrics(app)` wraps the whole application (outermost, so requests refused by the
authentication middleware count too) and serves ``GET /metrics`` (no token: like every
process's metrics endpoint it is meant for a scraper on a trusted network).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from soma.observability.auth_metrics import AuthMetrics
from soma.observability.metrics import ServiceRegistry

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "unmatched"  # any path no route serves (keeps the label's values bounded)
# The authorization metrics' action label: (method, route template) -> operation; anything else is "other".
ACTIONS = {
    ("GET", "/admin/outbox"): "outbox_list",
    ("GET", "/admin/outbox/stats"): "outbox_stats",
    ("POST", "/admin/outbox/replay"): "outbox_replay",
    ("POST", "/admin/outbox/replay/tenant"): "outbox_replay_filter",
    ("GET", "/admin/dlq"): "dlq_list",
    ("GET", "/admin/dlq/{letter_id}"): "dlq_show",
    ("POST", "/admin/dlq/redrive"): "dlq_redrive",
    ("POST", "/admin/dlq/redrive/filter"): "dlq_redrive_filter",
    ("GET", "/admin/brain/sleep_mode"): "sleep_mode_show",
    ("PUT", "/admin/brain/sleep_mode"): "sleep_mode_set",
    ("GET", "/admin/brain/sleep_policy"): "sleep_policy_show",
    ("PUT", "/admin/brain/sleep_policy"): "sleep_policy_set",
    ("POST", "/admin/util/sleep"): "util_sleep",
}
AUTH_RESULTS = ("allowed", "denied", "unauthenticated")


class AdminMetrics:
    def __init__(self) -> None:
        self.registry = ServiceRegistry("admin-api")
        r = self.registry
        self.requests = Counter(
            "soma_admin_requests_total", "HTTP requests by route template, method and status",
            ["route", "method", "status"], registry=r,
        )
        self.latency = Histogram(
            "soma_admin_request_seconds", "Time to answer a request, by route template", ["route"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.auth = AuthMetrics(r, ACTIONS.values(), AUTH_RESULTS)
        self.routes: RouteTemplates | None = None  # set by install_metrics

    def authorization(self, method: str, path: str, result: str, seconds: float) -> None:
        """Count one decision on an /admin request: `result` is allowed, denied (403) or unauthenticated (401)."""
        template = self.routes(path) if self.routes is not None else UNMATCHED
        self.auth.record(ACTIONS.get((method, template), "other"), result, seconds)


class RouteTemplates:
    """A request path -> the route template serving it (``/admin/outbox/stats``), from the OpenAPI
    paths and the top-level routes; built at the first request, when every route exists."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def _build(self) -> list[tuple[re.Pattern[str], str]]:
        templates = set(self._app.openapi().get("paths", {}))
        for route in self._app.routes:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                templates.add(path)
        return [(re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(t)) + "$"), t) for t in sorted(templates)]

    def __call__(self, path: str) -> str:
        if self._compiled is None:
            self._compiled = self._build()
        for pattern, template in self._compiled:
            if pattern.match(path):
                return template
        return UNMATCHED


class _Measure:
    """Pure ASGI middleware: counts every HTTP response by route template and status."""

    def __init__(self, app: ASGIApp, metrics: AdminMetrics, routes: RouteTemplates) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception before the response started

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, record_status)
        finally:
            route = self.routes(str(scope.get("path", "")))
            self.metrics.requests.labels(route, scope.get("method", "?"), str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


def install_metrics(app: FastAPI, metrics: AdminMetrics | None = None) -> AdminMetrics:
    """Count `app`'s requests and serve them at /metrics (call after every other middleware)."""
    metrics = metrics if metrics is not None else AdminMetrics()
    metrics.routes = RouteTemplates(app)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_Measure, metrics=metrics, routes=metrics.routes)
    return metrics
