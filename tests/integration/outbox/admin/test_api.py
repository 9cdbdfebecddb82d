"""The admin HTTP API against the real PostgreSQL: tokens, tenant scopes, filters, pagination, replay, audit."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from outbox.admin.api import create_app
from outbox.admin.auth import Principal
from outbox.admin.filters import OutboxFilter
from outbox.models import OutboxEvent
from soma.clients import database_engine
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.settings import Settings
from tests.support.outbox_admin import (
    ACME_TOKEN,
    ADMIN_TOKEN,
    GLOBEX_TOKEN,
    audits_of,
    count_all,
    rows_of,
    seed,
    with_tokens,
)

ROUTES = [
    ("GET", "/admin/outbox"),
    ("GET", "/admin/outbox/stats"),
    ("POST", "/admin/outbox/replay"),
    ("POST", "/admin/outbox/replay/tenant"),
    ("GET", "/admin/dlq"),
    ("GET", "/admin/dlq/dlq:0:0"),
    ("POST", "/admin/dlq/redrive"),
    ("POST", "/admin/dlq/redrive/filter"),
]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN, ACME, GLOBEX = auth(ADMIN_TOKEN), auth(ACME_TOKEN), auth(GLOBEX_TOKEN)


@pytest.fixture(scope="module")
def admin_settings(outbox_db: Settings, names: tuple[str, str]) -> Settings:
    return with_tokens(outbox_db, *names)


@pytest.fixture(scope="module")
def client(admin_settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(admin_settings), raise_server_exceptions=False) as client:
        yield client


def _field_named(response: Any, field: str) -> bool:
    return any(item["loc"][-1] == field for item in response.json()["detail"])


# --- Authentication -----------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{}, auth("wrong-token-0000000000"), {"Authorization": f"Basic {ADMIN_TOKEN}"}, {"Authorization": "Bearer"},
     {"Authorization": ADMIN_TOKEN}],
    ids=["none", "unknown", "basic", "empty", "no-scheme"],
)
def test_every_admin_route_needs_a_bearer_token(
    client: TestClient, names: tuple[str, str], method: str, path: str, headers: dict[str, str]
) -> None:
    acme, _ = names
    # Well-formed and malformed requests alike: authentication is checked first.
    for params, body in (({"tenant": acme}, {"tenant": acme, "ids": [1], "status": "sent"}), ({"limit": "x"}, "{")):
        if method == "GET":
            response = client.get(path, params=params, headers=headers)
        else:
            content = body if isinstance(body, str) else json.dumps(body)
            response = client.post(path, content=content, headers={**headers, "Content-Type": "application/json"})
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json() == {"detail": "missing or invalid bearer token"}


def test_openapi_and_health_need_no_token(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) >= {"/admin/outbox", "/admin/outbox/stats", "/admin/outbox/replay",
                                    "/admin/outbox/replay/tenant"}
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"]
    assert ready.json()["checks"]["postgresql"]["ok"]


# --- Cross-tenant access ------------------------------------------------------------------
def test_a_tenant_token_cannot_read_another_tenant(client: TestClient, engine: Engine, names: tuple[str, str]) -> None:
    _, globex = names
    seed(engine, globex, 2)
    for path in ("/admin/outbox", "/admin/outbox/stats"):
        response = client.get(path, params={"tenant": globex}, headers=ACME)
        assert response.status_code == 403
        assert globex not in response.text
        assert client.get(path, params={"tenant": globex}, headers=GLOBEX).status_code == 200
        assert client.get(path, params={"tenant": globex}, headers=ADMIN).status_code == 200
    response = client.post(
        "/admin/outbox/replay/tenant", json={"tenant": globex, "status": "pending"}, headers=ACME
    )
    assert response.status_code == 403


@pytest.mark.parametrize("mode", ["theirs", "mixed", "mixed-with-tenant", "unknown"])
def test_replaying_ids_outside_the_token_scope_is_refused_whole(
    client: TestClient, engine: Engine, names: tuple[str, str], mode: str
) -> None:
    acme, globex = names
    own = seed(engine, acme, 2)
    theirs = seed(engine, globex, 2)
    body: dict[str, Any] = {
        "theirs": {"ids": theirs},
        "mixed": {"ids": own + theirs},
        "mixed-with-tenant": {"ids": own + theirs, "tenant": acme},
        "unknown": {"ids": [*own, 2**52]},  # an unknown id looks like someone else's
    }[mode]
    before = count_all(engine)
    response = client.post("/admin/outbox/replay", json=body, headers=ACME)
    assert response.status_code == 403, response.text
    assert response.json() == {"detail": "forbidden: the token's scope does not cover this request"}
    assert count_all(engine) == before  # nothing replayed, nothing audited


def test_an_admin_token_gets_404_for_unknown_ids_and_422_for_mixed_tenants(
    client: TestClient, engine: Engine, pair: tuple[str, str]
) -> None:
    a, b = pair
    ids_a, ids_b = seed(engine, a, 1), seed(engine, b, 1)
    before = count_all(engine)
    response = client.post("/admin/outbox/replay", json={"ids": [*ids_a, 2**52]}, headers=ADMIN)
    assert response.status_code == 404
    assert "unknown id" in response.json()["detail"]
    response = client.post("/admin/outbox/replay", json={"ids": ids_a + ids_b}, headers=ADMIN)
    assert response.status_code == 422
    assert _field_named(response, "ids")
    assert count_all(engine) == before


# --- Listing and statistics ----------------------------------------------------------------
def test_list_pages_by_id_with_an_opaque_cursor(client: TestClient, engine: Engine, pair: tuple[str, str]) -> None:
    tenant, other = pair
    ids = seed(engine, tenant, 5)
    seed(engine, other, 3)
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"tenant": tenant, "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/admin/outbox", params=params, headers=ADMIN).json()
        seen += [item["id"] for item in page["items"]]
        assert all(item["tenant_id"] == tenant for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert pages == 3
    item = client.get("/admin/outbox", params={"tenant": tenant, "limit": 1}, headers=ADMIN).json()["items"][0]
    assert item["headers"]["dedupe-key"] == item["dedupe_key"]
    assert item["payload_size"] == 26
    assert "payload" not in item


def test_list_filters(client: TestClient, engine: Engine, pair: tuple[str, str]) -> None:
    tenant, _ = pair
    old = datetime(2026, 1, 1, tzinfo=UTC)
    failed = seed(engine, tenant, 2, status="failed", topic="tool.requests", created_at=old)
    sent = seed(engine, tenant, 3, status="sent")

    def ids(**params: Any) -> list[int]:
        response = client.get("/admin/outbox", params={"tenant": tenant, **params}, headers=ADMIN)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids(status="failed") == failed
    assert ids(topic="chat.messages") == sent
    assert ids(until="2026-01-01T00:00:01Z") == failed
    assert ids(since=(old + timedelta(days=1)).isoformat()) == sent
    assert ids(since="2025-12-31T23:00:00", until="2026-01-01T00:00:01+00:00", status="failed") == failed
    assert ids(status="dead") == []


def test_stats(client: TestClient, engine: Engine, pair: tuple[str, str]) -> None:
    tenant, _ = pair
    seed(engine, tenant, 2, status="failed", topic="tool.requests", created_at=datetime(2026, 1, 1, tzinfo=UTC))
    seed(engine, tenant, 3, status="sent")
    seed(engine, tenant, 1)
    response = client.get("/admin/outbox/stats", params={"tenant": tenant}, headers=ADMIN)
    stats = response.json()
    assert stats["total"] == 6
    assert stats["by_status"] == {"pending": 1, "sent": 3, "failed": 2, "dead": 0}
    assert stats["by_topic"] == {"chat.messages": {"pending": 1, "sent": 3}, "tool.requests": {"failed": 2}}
    assert stats["oldest_waiting_at"].startswith("2026-01-01T00:00:00")
    narrowed = client.get("/admin/outbox/stats", params={"tenant": tenant, "status": "sent"}, headers=ADMIN).json()
    assert narrowed["total"] == 3
    assert narrowed["filter"] == {"tenant": tenant, "status": "sent"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sending"}, "status"),
        ({"topic": "no.such.topic"}, "topic"),
        ({"since": "yesterday"}, "since"),
        ({"since": "1700000000"}, "since"),
        ({"until": "2026-01-01T00:00:00Z", "since": "2026-02-01T00:00:00Z"}, "until"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"tenant": ""}, "tenant"),
        ({"tenant": "a\x00b"}, "tenant"),
        ({"tenant": None}, "tenant"),
    ],
)
def test_invalid_list_filters_get_422_naming_the_field(
    client: TestClient, names: tuple[str, str], params: dict[str, Any], field: str
) -> None:
    query = {k: v for k, v in ({"tenant": names[0]} | params).items() if v is not None}
    response = client.get("/admin/outbox", params=query, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert _field_named(response, field), response.json()
    if field not in ("limit", "cursor"):
        stats = client.get("/admin/outbox/stats", params=query, headers=ADMIN)
        assert stats.status_code == 422
        assert _field_named(stats, field)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/admin/outbox/replay", {"ids": []}, "ids"),
        ("/admin/outbox/replay", {"ids": ["x"]}, 0),
        ("/admin/outbox/replay", {"ids": [0]}, 0),
        ("/admin/outbox/replay", {"ids": ["7"]}, 0),
        ("/admin/outbox/replay", {"ids": [7.5]}, 0),
        ("/admin/outbox/replay", {"ids": [True]}, 0),
        ("/admin/outbox/replay", {"ids": [1], "dry_run": "yes"}, "dry_run"),
        ("/admin/outbox/replay", {"ids": [2**64]}, 0),
        ("/admin/outbox/replay", {"ids": [1], "surprise": 1}, "surprise"),
        ("/admin/outbox/replay", {}, "ids"),
        ("/admin/outbox/replay/tenant", {"tenant": "TENANT"}, "status"),
        ("/admin/outbox/replay/tenant", {"tenant": "TENANT", "status": "gone"}, "status"),
        ("/admin/outbox/replay/tenant", {"tenant": "TENANT", "status": "sent", "topic": "nope"}, "topic"),
        ("/admin/outbox/replay/tenant", {"tenant": "TENANT", "status": "sent", "since": "soon"}, "since"),
        ("/admin/outbox/replay/tenant", {"tenant": "TENANT", "status": "sent", "since": 1700000000}, "since"),
        ("/admin/outbox/replay/tenant", {"tenant": "TENANT", "status": "sent", "until": "1700000000"}, "until"),
        ("/admin/outbox/replay/tenant", {"status": "sent"}, "tenant"),
    ],
)
def test_invalid_replay_requests_get_422_naming_the_field(
    client: TestClient, engine: Engine, names: tuple[str, str], path: str, body: dict[str, Any], field: str | int
) -> None:
    if body.get("tenant") == "TENANT":
        body = body | {"tenant": names[0]}
    before = count_all(engine)
    response = client.post(path, json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert _field_named(response, field), response.json()  # type: ignore[arg-type]
    assert count_all(engine) == before


# --- Replay -------------------------------------------------------------------------------
def _decode_audit(settings: Settings, payload: bytes) -> dict[str, Any]:
    catalog = load_catalog()
    return Codec(catalog, settings).decode("outbox.audit", payload)


def test_replay_by_ids_copies_rows_with_replay_of_and_the_original_dedupe_key(
    client: TestClient, engine: Engine, admin_settings: Settings, names: tuple[str, str]
) -> None:
    acme, _ = names
    originals = seed(engine, acme, 3, status="sent")
    before = {row["id"]: row for row in rows_of(engine, acme)}
    response = client.post("/admin/outbox/replay", json={"ids": originals[:2]}, headers=ACME)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["tenant"] == acme
    assert result["count"] == 2
    assert not result["dry_run"]
    audit_id = result["audit_event_id"]
    pairs = {p["original_id"]: p["replay_id"] for p in result["sample"]}
    assert set(pairs) == set(originals[:2])

    after = {row["id"]: row for row in rows_of(engine, acme)}
    for original_id, replay_id in pairs.items():
        original, copy = before[original_id], after[replay_id]
        assert copy["headers"] == original["headers"] | {"replay-of": str(original_id)}
        assert copy["headers"]["dedupe-key"] == original["headers"]["dedupe-key"]
        assert copy["dedupe_key"] == f"replay:{audit_id}:{original_id}"
        for column in ("tenant_id", "topic", "key", "payload", "event_type", "event_id"):
            assert copy[column] == original[column], column
        assert copy["status"] == "pending"
        assert copy["attempts"] == 0
        assert after[original_id] == original  # the original is untouched

    # The audit row and the AdminAudit event, written in the replay's transaction.
    [audit] = [a for a in audits_of(engine, acme) if a["event_id"] == audit_id]
    assert audit["actor"] == "token-" + hashlib.sha256(ACME_TOKEN.encode()).hexdigest()[:8]
    assert audit["action"] == "outbox.replay"
    assert audit["outcome"] == "ok"
    assert audit["details"]["count"] == 2
    assert audit["details"]["original_ids"] == originals[:2]
    [event_row] = [r for r in after.values() if r["dedupe_key"] == f"audit:{audit_id}"]
    assert event_row["topic"] == "outbox.audit"
    assert event_row["status"] == "pending"
    event = _decode_audit(admin_settings, event_row["payload"])
    assert event["event_id"] == audit_id == event_row["event_id"]
    assert event["actor"] == audit["actor"]
    assert event["action"] == "outbox.replay"
    assert event["target_tenant"] == acme
    assert event["outcome"] == "ok"
    assert json.loads(event["details_json"]) == audit["details"]
    assert ACME_TOKEN not in json.dumps(audit, default=str)


def test_replay_by_filter_and_dry_run(
    client: TestClient, engine: Engine, names: tuple[str, str]
) -> None:
    _, globex = names
    failed = seed(engine, globex, 3, status="failed", topic="tool.requests")
    seed(engine, globex, 2, status="sent", topic="tool.requests")
    body = {"tenant": globex, "status": "failed", "topic": "tool.requests", "since": "2020-01-01T00:00:00Z"}
    before = count_all(engine)
    dry = client.post("/admin/outbox/replay/tenant", json=body | {"dry_run": True}, headers=GLOBEX).json()
    assert dry["dry_run"]
    assert dry["count"] >= 3
    assert dry["audit_event_id"] is None
    assert {p["original_id"] for p in dry["sample"]} >= set(failed)
    assert count_all(engine) == before  # a dry run writes nothing, not even an audit row
    done = client.post("/admin/outbox/replay/tenant", json=body, headers=GLOBEX).json()
    assert done["count"] == dry["count"]
    assert done["by_topic"] == {"tool.requests": dry["count"]}
    assert count_all(engine) == (before[0] + done["count"] + 1, before[1] + 1)
    [audit] = [a for a in audits_of(engine, globex) if a["event_id"] == done["audit_event_id"]]
    assert audit["actor"] == "globex-ops"
    assert audit["details"]["filter"] == {
        "tenant": globex, "status": "failed", "topic": "tool.requests", "since": "2020-01-01T00:00:00+00:00",
    }


def test_a_replay_over_the_row_bound_is_refused_whole(
    admin_settings: Settings, engine: Engine, pair: tuple[str, str]
) -> None:
    tenant, _ = pair
    seed(engine, tenant, 4, status="dead")
    small = admin_settings.replace(admin_replay_max_rows=3)
    with TestClient(create_app(small), raise_server_exceptions=False) as client:
        before = count_all(engine)
        response = client.post(
            "/admin/outbox/replay/tenant", json={"tenant": tenant, "status": "dead"}, headers=ADMIN
        )
        assert response.status_code == 422
        assert "SOMA_ADMIN_REPLAY_MAX_ROWS" in response.text
        assert count_all(engine) == before


def test_replay_is_all_or_nothing(
    admin_settings: Settings, engine: Engine, pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the copies (here: while auditing) leaves no copy, no audit row, no audit event."""
    import outbox.admin.replay

    tenant, _ = pair
    ids = seed(engine, tenant, 2500, status="sent")  # several copy statements (CHUNK rows each)
    real_record = outbox.admin.replay.record

    def record_then_fail(*args: Any, **kwargs: Any) -> None:
        real_record(*args, **kwargs)
        raise RuntimeError("the database went away after the audit row")

    monkeypatch.setattr(outbox.admin.replay, "record", record_then_fail)
    progress: list[tuple[int, int]] = []
    replayer = outbox.admin.replay.Replayer(
        database_engine(admin_settings), admin_settings, load_catalog(), Codec(load_catalog(), admin_settings)
    )
    before = count_all(engine)
    with pytest.raises(RuntimeError):
        replayer.by_filter(
            Principal("t", all_tenants=True),
            OutboxFilter(tenant, status="sent"),
            progress=lambda done, total: progress.append((done, total)),
        )
    assert progress[-1] == (2500, 2500)
    assert len(progress) == 4
    assert count_all(engine) == before
    assert [row["id"] for row in rows_of(engine, tenant)] == ids
    replayer.engine.dispose()


def test_replayed_rows_are_ordinary_pending_rows_for_the_relay(
    client: TestClient, engine: Engine, pair: tuple[str, str]
) -> None:
    tenant, _ = pair
    [original] = seed(engine, tenant, 1, status="dead")
    result = client.post("/admin/outbox/replay", json={"ids": [original], "tenant": tenant}, headers=ADMIN).json()
    replay_id = result["sample"][0]["replay_id"]
    with engine.connect() as conn:
        row = conn.execute(select(OutboxEvent.status, OutboxEvent.next_attempt_at).where(OutboxEvent.id == replay_id))
        status, due = row.one()
    assert status == "pending"
    assert due <= datetime.now(UTC)
    listed = client.get("/admin/outbox", params={"tenant": tenant, "status": "pending"}, headers=ADMIN).json()
    assert {item["headers"].get("replay-of") for item in listed["items"]} >= {str(original)}


def _make_oversized(engine: Engine, row_id: int) -> None:
    """Give a stored row a 1.1 MB payload, as a legacy row written before the size check would have."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE outbox_events SET payload = :p WHERE id = :id"),
                     {"p": b"\xc3\x01" + b"x" * 1_100_000, "id": row_id})


@pytest.mark.parametrize("dry_run", [False, True])
def test_replay_refuses_the_whole_request_when_one_row_is_over_its_topics_limit(
    client: TestClient, engine: Engine, pair: tuple[str, str], dry_run: bool
) -> None:
    tenant, _ = pair
    ids = seed(engine, tenant, 3, status="dead")
    _make_oversized(engine, ids[1])
    before = count_all(engine)
    response = client.post("/admin/outbox/replay", json={"tenant": tenant, "ids": ids, "dry_run": dry_run},
                           headers=ADMIN)
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert re.fullmatch(
        rf"row {ids[1]} \(chat\.messages\): record of \d+ bytes exceeds the topic's limit of 1000000 bytes; "
        r"nothing replayed: leave such rows out", detail["msg"]), detail["msg"]
    assert count_all(engine) == before  # nothing copied, nothing audited
    by_filter = client.post("/admin/outbox/replay/tenant", json={"tenant": tenant, "status": "dead"}, headers=ADMIN)
    assert by_filter.status_code == 422
    assert by_filter.json()["detail"][0]["msg"].startswith(f"row {ids[1]} (chat.messages)")
    assert count_all(engine) == before
    rest = client.post("/admin/outbox/replay", json={"tenant": tenant, "ids": [ids[0], ids[2]]}, headers=ADMIN)
    assert rest.status_code == 200, rest.text
    assert rest.json()["count"] == 2
