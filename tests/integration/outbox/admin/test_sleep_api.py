"""The admin API's sleep routes against the real PostgreSQL, Kafka (config_updates) and Redis, in process.

No integrator runs here: where a test needs the integrator's transition, it writes the Redis entry
itself exactly as the integrator does (the SleepStateChanged record as `codec.to_json`, JSON text,
at `sleep:{tenant}`).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from outbox.admin.api import create_app
from outbox.admin.auth import Principal
from soma.config_updates import publish, read_updates
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.topics import ensure
from soma.settings import Settings
from soma.sleep.policy import redis_key
from tests.support.outbox_admin import (
    ACME_TOKEN,
    ADMIN_TOKEN,
    GLOBEX_TOKEN,
    audits_of,
    rows_of,
    sleep_redis,
    with_tokens,
)

ACME, GLOBEX, ADMIN = ({"Authorization": f"Bearer {t}"} for t in (ACME_TOKEN, GLOBEX_TOKEN, ADMIN_TOKEN))
ACME_ACTOR = "token-" + hashlib.sha256(ACME_TOKEN.encode()).hexdigest()[:8]
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/admin/brain/sleep_mode", None),
    ("PUT", "/admin/brain/sleep_mode", {"state": "light"}),
    ("GET", "/admin/brain/sleep_policy", None),
    ("PUT", "/admin/brain/sleep_policy", {"light": {"eta": 0.2}}),
    ("POST", "/admin/util/sleep", {"ms": 1}),
]
UTIL_CAP_S = 0.3


@pytest.fixture(scope="module")
def sleep_settings(outbox_db: Settings, names: tuple[str, str]) -> Settings:
    """The tokens of the module's tenants; live settings read on every request (no cache to wait out)."""
    ensure(outbox_db, load_catalog())  # config_updates exists for the live settings
    settings = with_tokens(outbox_db, *names, admin_live_cache_s=0.0, admin_util_sleep_max_s=UTIL_CAP_S,
                           admin_util_sleep_burst=1000, admin_sleep_wait_max_s=20.0)
    publish(settings, "ENABLE_SLEEP", "true", tenant=names[0], author="tests")  # acme only; globex stays off
    return settings


@pytest.fixture(scope="module")
def client(sleep_settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(sleep_settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def redis(sleep_settings: Settings, names: tuple[str, str]) -> Iterator[Any]:
    with sleep_redis(sleep_settings, names) as client:
        yield client


def _codec(settings: Settings) -> Codec:
    return Codec(load_catalog(), settings)


def _decoded(settings: Settings, engine: Engine, tenant: str, topic: str) -> list[dict[str, Any]]:
    codec = _codec(settings)
    return [codec.decode(topic, bytes(row["payload"])) | {"_row": row}
            for row in rows_of(engine, tenant) if row["topic"] == topic]


def _cache_transition(settings: Settings, redis: Any, tenant: str, *, seq: int, to_state: str,
                      request_id: str | None, until: datetime | None = None) -> dict[str, Any]:
    """What the integrator writes to Redis after a transition: the SleepStateChanged as codec.to_json."""
    record = {
        "event_id": str(uuid.uuid4()), "tenant_id": tenant, "occurred_at": datetime.now(UTC), "seq": seq,
        "from_state": "awake", "to_state": to_state, "reason": "manual", "until": until,
        "params": {"eta": 0.0, "temperature": 1.0, "dwell_frames": 3, "drop_threshold": 0.3, "emits_frames": True},
        "policy_version": 0, "requested_by": ACME_ACTOR, "request_id": request_id,
    }
    text = json.dumps(_codec(settings).to_json("cog.sleep", record))
    redis.set(redis_key(tenant), text)
    return record


def _loc(response: Any) -> list[list[Any]]:
    return [item["loc"] for item in response.json()["detail"]]


# --- Tokens, scopes, the flag ------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_sleep_route_needs_a_token_and_the_tenant_in_its_scope(
    client: TestClient, names: tuple[str, str], method: str, path: str, body: dict[str, Any] | None
) -> None:
    acme, globex = names
    for headers in ({}, {"Authorization": "Bearer not-a-configured-token"}):
        response = client.request(method, path, params={"tenant": acme}, json=body, headers=headers)
        assert response.status_code == 401, response.text
    for tenant, headers in ((globex, ACME), (acme, GLOBEX)):  # 403 before the flag is even looked at
        response = client.request(method, path, params={"tenant": tenant}, json=body, headers=headers)
        assert response.status_code == 403, response.text
        assert tenant not in response.text


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_sleep_route_answers_409_when_enable_sleep_is_off_for_the_tenant(
    client: TestClient, engine: Engine, names: tuple[str, str], method: str, path: str, body: dict[str, Any] | None
) -> None:
    _, globex = names
    before = rows_of(engine, globex), audits_of(engine, globex)
    for headers in (GLOBEX, ADMIN):
        response = client.request(method, path, params={"tenant": globex}, json=body, headers=headers)
        assert response.status_code == 409, response.text
        detail = response.json()["detail"]
        assert f"soma config set ENABLE_SLEEP true --tenant {globex}" in detail
        assert "\n" not in detail
    assert (rows_of(engine, globex), audits_of(engine, globex)) == before  # nothing written


# --- sleep_mode ----------------------------------------------------------------------------
def test_sleep_mode_reads_the_integrators_cached_state(
    client: TestClient, sleep_settings: Settings, redis: Any, names: tuple[str, str]
) -> None:
    acme, _ = names
    redis.delete(redis_key(acme))
    response = client.get("/admin/brain/sleep_mode", params={"tenant": acme}, headers=ACME)
    assert response.status_code == 200, response.text
    assert response.json() | {"tenant": None} == {
        "tenant": None, "state": "awake", "seq": 0, "recorded": False, "from_state": None, "reason": None,
        "since": None, "until": None, "requested_by": None, "request_id": None, "params": None, "policy_version": 0}
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    _cache_transition(sleep_settings, redis, acme, seq=4, to_state="deep", request_id="r-1", until=until)
    shown = client.get("/admin/brain/sleep_mode", params={"tenant": acme}, headers=ADMIN).json()
    assert (shown["state"], shown["seq"], shown["recorded"], shown["request_id"]) == ("deep", 4, True, "r-1")
    assert datetime.fromisoformat(shown["until"]) == until
    assert shown["params"]["eta"] == 0.0


def test_a_sleep_request_and_its_audit_are_written_in_one_transaction(
    client: TestClient, sleep_settings: Settings, engine: Engine, names: tuple[str, str]
) -> None:
    acme, _ = names
    started = datetime.now(UTC)
    response = client.put("/admin/brain/sleep_mode", params={"tenant": acme}, json={"state": "deep", "for": "30m"},
                          headers=ACME)
    assert response.status_code == 202, response.text
    answer = response.json()
    [request] = [r for r in _decoded(sleep_settings, engine, acme, "cog.sleep_requests")
                 if r["event_id"] == answer["request_id"]]
    assert (request["to_state"], request["reason"], request["requested_by"]) == ("deep", "manual", ACME_ACTOR)
    assert timedelta(minutes=29) < request["until"] - started < timedelta(minutes=31)
    assert datetime.fromisoformat(answer["until"]) == request["until"]
    assert request["_row"]["key"] == acme
    assert request["_row"]["status"] == "pending"
    [audit] = [a for a in audits_of(engine, acme) if a["event_id"] == answer["audit_event_id"]]
    assert (audit["action"], audit["actor"], audit["outcome"]) == ("sleep_mode_set", ACME_ACTOR, "requested")
    assert audit["details"]["request_id"] == answer["request_id"]
    [event] = [e for e in _decoded(sleep_settings, engine, acme, "outbox.audit")
               if e["event_id"] == answer["audit_event_id"]]
    assert json.loads(event["details_json"]) == audit["details"]


def test_a_failing_audit_leaves_no_sleep_request(
    client: TestClient, engine: Engine, names: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import outbox.admin.audit
    from outbox.admin.sleep import SleepModeIn

    acme, _ = names
    real_record = outbox.admin.audit.record

    def record_then_fail(*args: Any, **kwargs: Any) -> None:
        real_record(*args, **kwargs)
        raise RuntimeError("the database went away after the audit row")

    monkeypatch.setattr(outbox.admin.audit, "record", record_then_fail)
    before = rows_of(engine, acme), audits_of(engine, acme)
    service = client.app.state.sleep  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        service.request(Principal("t", all_tenants=True), acme, SleepModeIn.model_validate({"state": "freeze"}))
    assert (rows_of(engine, acme), audits_of(engine, acme)) == before


def test_wait_s_answers_200_with_the_integrators_transition(
    client: TestClient, sleep_settings: Settings, engine: Engine, redis: Any, names: tuple[str, str]
) -> None:
    acme, _ = names
    known = {r["event_id"] for r in _decoded(sleep_settings, engine, acme, "cog.sleep_requests")}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.put, "/admin/brain/sleep_mode", params={"tenant": acme},
                              json={"state": "light", "wait_s": 20}, headers=ACME)
        deadline, request_id = time.monotonic() + 15, None
        while request_id is None and time.monotonic() < deadline:  # the request row, once committed
            rows = _decoded(sleep_settings, engine, acme, "cog.sleep_requests")
            new = [r for r in rows if r["event_id"] not in known]
            request_id = new[0]["event_id"] if new else None
            time.sleep(0.05)
        assert request_id is not None
        # The integrator's part, done by the test: the transition for this request, cached in Redis.
        _cache_transition(sleep_settings, redis, acme, seq=5, to_state="light", request_id=request_id)
        response = pending.result(timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["request_id"] == request_id
    assert (answer["transition"]["state"], answer["transition"]["seq"]) == ("light", 5)
    assert 0 <= answer["waited_s"] < 20


def test_wait_s_answers_504_naming_the_request_when_no_transition_shows(
    client: TestClient, sleep_settings: Settings, engine: Engine, names: tuple[str, str]
) -> None:
    acme, _ = names
    response = client.put("/admin/brain/sleep_mode", params={"tenant": acme}, json={"state": "awake", "wait_s": 0.5},
                          headers=ACME)
    assert response.status_code == 504, response.text
    answer = response.json()
    assert "was written, but no transition for it showed within 0.5s" in answer["detail"]
    assert any(r["event_id"] == answer["request_id"]
               for r in _decoded(sleep_settings, engine, acme, "cog.sleep_requests"))


@pytest.mark.parametrize(("body", "loc"), [
    ({"state": "asleep"}, ["body", "state"]),
    ({}, ["body", "state"]),
    ({"state": "deep", "for": "soon"}, ["body", "for"]),
    ({"state": "deep", "for": "off"}, ["body", "for"]),
    ({"state": "deep", "for": "-5m"}, ["body", "for"]),
    ({"state": "deep", "for": "31d"}, ["body", "for"]),
    ({"state": "deep", "for": "9" * 41}, ["body", "for"]),
    ({"state": "deep", "until": "2020-01-01T00:00:00Z"}, ["body", "until"]),
    ({"state": "deep", "until": "2999-01-01T00:00:00Z"}, ["body", "until"]),
    ({"state": "deep", "until": 1700000000}, ["body", "until"]),
    ({"state": "deep", "for": "5m", "until": "2999-01-01T00:00:00Z"}, ["body"]),
    ({"state": "awake", "for": "5m"}, ["body"]),
    ({"state": "deep", "wait_s": -1}, ["body", "wait_s"]),
    ({"state": "deep", "wait_s": 1e9}, ["body", "wait_s"]),
    ({"state": "deep", "for_": "5m"}, ["body", "for_"]),
    ({"state": "deep", "reason": "schedule"}, ["body", "reason"]),
])
def test_bad_sleep_mode_bodies_get_422_naming_the_field_and_write_nothing(
    client: TestClient, engine: Engine, names: tuple[str, str], body: dict[str, Any], loc: list[str]
) -> None:
    acme, _ = names
    before = rows_of(engine, acme)
    response = client.put("/admin/brain/sleep_mode", params={"tenant": acme}, json=body, headers=ACME)
    assert response.status_code == 422, response.text
    assert loc in _loc(response)
    assert rows_of(engine, acme) == before


@pytest.mark.parametrize(("path", "content", "message"), [
    ("/admin/brain/sleep_mode", b"\xff\xfe{}", "JSON decode error"),
    ("/admin/brain/sleep_mode", b'{"state": "\xff\xfe"}', "not parseable JSON"),
    ("/admin/brain/sleep_mode", b"[" * 5000, "not parseable JSON"),
    ("/admin/brain/sleep_mode", b'{"a":' * 3000 + b"1" + b"}" * 3000, "not parseable JSON"),
    ("/admin/brain/sleep_mode", b'{"state": "deep", "x": "' + b"y" * 70_000 + b'"}', "larger than 65536 bytes"),
    ("/admin/util/sleep", b"\xff\xfe{}", "JSON decode error"),
    ("/admin/util/sleep", b'{"ms": 1, "x": "\xc3\x28"}', "not parseable JSON"),
    ("/admin/util/sleep", b"[" * 5000, "not parseable JSON"),
    ("/admin/util/sleep", b'{"ms": 1, "x": "' + b"y" * 70_000 + b'"}', "larger than 65536 bytes"),
])
def test_unparsable_or_oversized_bodies_get_422_naming_the_body(
    client: TestClient, engine: Engine, names: tuple[str, str], path: str, content: bytes, message: str
) -> None:
    acme, _ = names
    before = rows_of(engine, acme)
    method = "PUT" if "brain" in path else "POST"
    response = client.request(method, path, params={"tenant": acme}, content=content,
                              headers=ACME | {"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    [item] = response.json()["detail"]
    assert item["loc"][0] == "body"  # FastAPI's own JSON errors add the position
    assert message in item["msg"]
    assert rows_of(engine, acme) == before


# --- sleep_policy --------------------------------------------------------------------------
def test_sleep_policy_is_published_versioned_and_audited(
    client: TestClient, sleep_settings: Settings, engine: Engine, names: tuple[str, str]
) -> None:
    acme, _ = names
    shown = client.get("/admin/brain/sleep_policy", params={"tenant": acme}, headers=ACME)
    assert shown.status_code == 200, shown.text
    first = shown.json()
    assert first["policy"]["deep"]["eta"] == 0.0
    body = {"light": {"eta": 0.05}, "wake_on_traffic": False, "default_ttl_s": 600}
    response = client.put("/admin/brain/sleep_policy", params={"tenant": acme}, json=body, headers=ACME)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["version"] == first["version"] + 1
    assert answer["policy"] == body
    after = client.get("/admin/brain/sleep_policy", params={"tenant": acme}, headers=ACME).json()
    assert (after["version"], after["scope"]) == (answer["version"], "tenant")
    assert (after["policy"]["light"]["eta"], after["policy"]["wake_on_traffic"]) == (0.05, False)
    # On config_updates, as every process applies it.
    updates, _ = read_updates(sleep_settings)
    [update] = [u for u in updates if u["event_id"] == answer["config_event_id"]]
    assert (update["name"], update["scope_tenant"], update["author"]) == ("SLEEP_POLICY", acme, ACME_ACTOR)
    [audit] = [a for a in audits_of(engine, acme) if a["event_id"] == answer["audit_event_id"]]
    assert (audit["action"], audit["outcome"], audit["details"]["version"]) == (
        "sleep_policy_set", "published", answer["version"])


@pytest.mark.parametrize(("content", "field"), [
    (b'{"deep": {"eta": 0.5}}', "SLEEP_POLICY.deep.eta"),
    (b'{"light": {"eta": 2}}', "SLEEP_POLICY.light.eta"),
    (b'{"awake": {"temperature": 1}, "light": {"temperature": 5}}', "SLEEP_POLICY.light.temperature"),
    (b'{"schedule": [{"state": "deep", "start": "25:00", "end": "01:00"}]}', "SLEEP_POLICY.schedule[0].start"),
    (b'{"nope": 1}', "SLEEP_POLICY.nope"),
    (b"[1]", "SLEEP_POLICY"),
    (b"not json", "SLEEP_POLICY"),
    (b"\xff\xfe{}", "SLEEP_POLICY"),
    (b'{"a":' * 20 + b"1" + b"}" * 20, "SLEEP_POLICY"),
    (b'{"x": "' + b"y" * 70_000 + b'"}', "SLEEP_POLICY"),
])
def test_bad_sleep_policies_get_422_naming_the_field_and_publish_nothing(
    client: TestClient, sleep_settings: Settings, names: tuple[str, str], content: bytes, field: str
) -> None:
    acme, _ = names
    before = client.get("/admin/brain/sleep_policy", params={"tenant": acme}, headers=ACME).json()
    response = client.put("/admin/brain/sleep_policy", params={"tenant": acme}, content=content,
                          headers=ACME | {"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert ["body", field] in _loc(response)
    after = client.get("/admin/brain/sleep_policy", params={"tenant": acme}, headers=ACME).json()
    assert after["version"] == before["version"]


# --- util/sleep ----------------------------------------------------------------------------
def test_util_sleep_sync_waits_the_capped_time(client: TestClient, names: tuple[str, str]) -> None:
    acme, _ = names
    short = client.post("/admin/util/sleep", params={"tenant": acme}, json={"ms": 50}, headers=ACME)
    assert short.status_code == 200, short.text
    assert (short.json()["mode"], short.json()["seconds"], short.json()["capped"]) == ("sync", 0.05, False)
    assert short.json()["waited_ms"] >= 49
    long = client.post("/admin/util/sleep", params={"tenant": acme}, json={"ms": 60_000, "async": False}, headers=ACME)
    assert long.status_code == 200, long.text
    assert (long.json()["seconds"], long.json()["capped"]) == (UTIL_CAP_S, True)
    assert long.json()["waited_ms"] >= UTIL_CAP_S * 1000 - 1


def test_util_sleep_async_writes_a_sleep_tool_request_through_the_outbox(
    client: TestClient, sleep_settings: Settings, engine: Engine, names: tuple[str, str]
) -> None:
    acme, _ = names
    response = client.post("/admin/util/sleep", params={"tenant": acme}, json={"ms": 200, "async": True},
                           headers=ACME)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["mode"], answer["results_topic"], answer["waited_ms"]) == ("async", "tool.results", None)
    rows = _decoded(sleep_settings, engine, acme, "tool.requests")
    [request] = [r for r in rows if r["call_id"] == answer["call_id"]]
    assert request["event_id"] == answer["request_event_id"]
    assert (request["tool"], json.loads(request["arguments_json"])) == ("sleep", {"seconds": 0.2})
    assert request["session_id"] == answer["session_id"]
    assert request["_row"]["key"] == f"{acme}:{answer['session_id']}"
    assert request["timeout_ms"] > 200
    [audit] = [a for a in audits_of(engine, acme) if a["event_id"] == answer["audit_event_id"]]
    assert (audit["action"], audit["details"]["call_id"]) == ("util_sleep", answer["call_id"])
    assert request["requested_by"] == audit["event_id"]


@pytest.mark.parametrize(("body", "loc"), [
    ({"ms": -1}, ["body", "ms"]),
    ({"ms": 10**12}, ["body", "ms"]),
    ({"ms": 1.5}, ["body", "ms"]),
    ({"ms": "100"}, ["body", "ms"]),
    ({}, ["body", "ms"]),
    ({"ms": 1, "async": "yes"}, ["body", "async"]),
    ({"ms": 1, "tool": "calc"}, ["body", "tool"]),
])
def test_bad_util_sleep_bodies_get_422_naming_the_field(
    client: TestClient, names: tuple[str, str], body: dict[str, Any], loc: list[str]
) -> None:
    response = client.post("/admin/util/sleep", params={"tenant": names[0]}, json=body, headers=ACME)
    assert response.status_code == 422, response.text
    assert loc in _loc(response)


def test_util_sleep_is_rate_limited_per_token(sleep_settings: Settings, engine: Engine, names: tuple[str, str]) -> None:
    acme, _ = names
    limited = sleep_settings.replace(admin_util_sleep_burst=2, admin_util_sleep_rate_per_s=0.01)
    with TestClient(create_app(limited, engine=engine), raise_server_exceptions=False) as own:
        statuses = [own.post("/admin/util/sleep", params={"tenant": acme}, json={"ms": 0}, headers=ACME)
                    for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        refused = statuses[-1]
        assert 1 <= int(refused.headers["Retry-After"]) <= 100
        assert "too many util sleep calls for this token" in refused.json()["detail"]
        other = own.post("/admin/util/sleep", params={"tenant": acme}, json={"ms": 0}, headers=ADMIN)
        assert other.status_code == 200  # another token has its own bucket


# --- metrics, the live settings' topic ---------------------------------------------------------
def test_sleep_routes_are_counted_as_their_own_authorization_actions(
    client: TestClient, names: tuple[str, str]
) -> None:
    def decisions() -> dict[tuple[str, str], float]:
        found = {}
        for family in text_string_to_metric_families(client.get("/metrics").text):
            for sample in family.samples:
                if sample.name == "soma_auth_decisions_total":
                    found[(sample.labels["action"], sample.labels["result"])] = sample.value
        return found

    acme, globex = names
    before = decisions()
    client.get("/admin/brain/sleep_mode", params={"tenant": acme}, headers=ACME)
    client.put("/admin/brain/sleep_policy", params={"tenant": globex}, json={}, headers=ACME)
    client.post("/admin/util/sleep", params={"tenant": acme}, json={"ms": 0})
    after = decisions()
    for labels in (("sleep_mode_show", "allowed"), ("sleep_policy_set", "denied"), ("util_sleep", "unauthenticated")):
        assert after.get(labels, 0) - before.get(labels, 0) == 1, labels


def test_a_config_updates_topic_that_does_not_exist_reads_as_no_updates(stack: Settings) -> None:
    never = stack.replace(topic_prefix=f"test.none-{uuid.uuid4().hex[:8]}.")
    assert read_updates(never)[0] == []
