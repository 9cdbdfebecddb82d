"""Malformed requests never produce a 5xx: the admin API fuzzed against its own OpenAPI schema.

Schemathesis generates schema-valid and schema-violating requests for every operation;
each is sent with an all-tenant token, a tenant-scoped token and no token, against the
real PostgreSQL. Hand-written cases cover what a generator rarely produces (bytes that
are not UTF-8, wrong content types, huge numbers, NUL bytes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine

from outbox.api import create_app
from soma.clients import database_engine
from soma.settings import Settings
from tests.support.outbox_admin import ACME_TOKEN, ADMIN_TOKEN, forget, migrate, seed, tenants, with_tokens

HEADER_SETS = [{"Authorization": f"Bearer {ADMIN_TOKEN}"}, {"Authorization": f"Bearer {ACME_TOKEN}"}, {}]


@pytest.fixture(scope="module")
def names(run_id: str) -> tuple[str, str]:
    return tenants(run_id)


@pytest.fixture(scope="module")
def engine(settings: Settings, names: tuple[str, str]) -> Iterator[Engine]:
    migrate(settings)
    engine = database_engine(settings)
    seed(engine, names[0], 3, status="failed")
    yield engine
    forget(engine, names)
    engine.dispose()


@pytest.fixture(scope="module")
def app(settings: Settings, names: tuple[str, str], engine: Engine) -> FastAPI:
    return create_app(with_tokens(settings, *names), engine=engine)


@pytest.fixture
def api_schema(app: FastAPI) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(
    max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_no_generated_request_gets_a_server_error(case: Any) -> None:
    for headers in HEADER_SETS:
        response = case.call(headers=headers)
        assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}"
        if response.status_code in (401, 403, 404, 422):
            body = response.json()
            assert "detail" in body
        if not headers and case.path.startswith("/admin"):
            assert response.status_code == 401


MALFORMED: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/admin/outbox", {"params": {"tenant": "\x00"}}),
    ("GET", "/admin/outbox", {"params": {"tenant": "a" * 10_000}}),
    ("GET", "/admin/outbox", {"params": {"tenant": "t", "limit": str(2**80)}}),
    ("GET", "/admin/outbox", {"params": {"tenant": "t", "limit": "1e3"}}),
    ("GET", "/admin/outbox", {"params": {"tenant": "t", "cursor": "\u00e9\u00e9"}}),
    ("GET", "/admin/outbox", {"params": {"tenant": "t", "cursor": "bzE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}}),
    ("GET", "/admin/outbox", {"params": {"tenant": "t", "since": "9999-12-31T23:59:59-23:59"}}),
    ("GET", "/admin/outbox", {"params": {"tenant": "t", "since": "0001-01-01T00:00:00+23:59"}}),
    ("GET", "/admin/outbox", {"params": {"tenant": "t", "until": "2026-02-30T00:00:00"}}),
    ("GET", "/admin/outbox", {"params": [("tenant", "a"), ("tenant", "b"), ("status", "sent"), ("status", "x")]}),
    ("GET", "/admin/outbox/stats", {"params": {"tenant": "t", "topic": "\x00"}}),
    ("GET", "/admin/outbox/stats", {"params": {"tenant": "\ud7ff\U0010ffff"}}),
    ("POST", "/admin/outbox/replay", {"content": b"\xff\xfe\x00garbage", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/admin/outbox/replay", {"content": b"{", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/admin/outbox/replay", {"content": b"ids=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
    ("POST", "/admin/outbox/replay", {"content": b'{"ids": [1]}', "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/admin/outbox/replay", {"json": []}),
    ("POST", "/admin/outbox/replay", {"json": "ids"}),
    ("POST", "/admin/outbox/replay", {"json": None}),
    ("POST", "/admin/outbox/replay", {"json": {"ids": [2**63]}}),
    ("POST", "/admin/outbox/replay", {"json": {"ids": [9.5]}}),
    ("POST", "/admin/outbox/replay", {"json": {"ids": [True]}}),
    ("POST", "/admin/outbox/replay", {"json": {"ids": [[1]]}}),
    ("POST", "/admin/outbox/replay", {"json": {"ids": list(range(1, 10_002))}}),
    ("POST", "/admin/outbox/replay", {"json": {"ids": [1], "tenant": "\x00"}}),
    ("POST", "/admin/outbox/replay", {"json": {"ids": [1], "dry_run": "maybe"}}),
    ("POST", "/admin/outbox/replay", {"content": b'{"ids": [1e400]}', "headers": {"Content-Type": "application/json"}}),
    ("POST", "/admin/outbox/replay", {"content": b'{"ids": [NaN]}', "headers": {"Content-Type": "application/json"}}),
    ("POST", "/admin/outbox/replay", {"content": b"[" * 5000, "headers": {"Content-Type": "application/json"}}),
    ("POST", "/admin/outbox/replay/tenant", {"json": {"tenant": "t", "status": "sent", "since": "9999-12-31T23:59:59-23:59"}}),
    ("POST", "/admin/outbox/replay/tenant", {"json": {"tenant": "t", "status": "sent", "until": 1e30}}),
    ("POST", "/admin/outbox/replay/tenant", {"json": {"tenant": "t", "status": ["sent"]}}),
    ("POST", "/admin/outbox/replay/tenant", {"json": {"tenant": {"$ne": ""}, "status": "sent"}}),
    ("POST", "/admin/outbox/replay/tenant", {"json": {"tenant": "t' OR '1'='1", "status": "sent", "dry_run": True}}),
    ("PUT", "/admin/outbox/replay", {"json": {"ids": [1]}}),
    ("GET", "/admin/outbox/replay", {}),
    ("GET", "/admin/outbox/../../etc/passwd", {}),
]


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "options"), MALFORMED, ids=[f"{m} {p} {i}" for i, (m, p, _) in enumerate(MALFORMED)])
def test_hand_written_malformed_requests_never_get_a_server_error(
    client: TestClient, method: str, path: str, options: dict[str, Any]
) -> None:
    for headers in HEADER_SETS:
        request_headers = {**options.get("headers", {}), **headers}
        response = client.request(method, path, **{**options, "headers": request_headers})
        assert response.status_code < 500, (headers.keys(), response.status_code, response.text[:300])
        assert response.headers["content-type"].startswith("application/json")
        json.loads(response.text)
        if not headers and path.startswith("/admin/outbox") and response.status_code not in (404, 405):
            assert response.status_code == 401
