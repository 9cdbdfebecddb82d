"""The admin API's authorization metrics, read from its real /metrics (PostgreSQL behind it):
every /admin request is one decision, counted by operation and result, naming no token or tenant."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from outbox.admin.api import create_app
from soma.settings import Settings
from tests.support.outbox_admin import ACME_TOKEN, ADMIN_TOKEN, seed, with_tokens


@pytest.fixture(scope="module")
def client(outbox_db: Settings, names: tuple[str, str], engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(with_tokens(outbox_db, *names)), raise_server_exceptions=False) as client:
        yield client


def samples(client: TestClient, name: str) -> dict[tuple[str, str], float]:
    """`name`'s samples from /metrics by (action, result)."""
    text = client.get("/metrics").text
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[(sample.labels["action"], sample.labels["result"])] = sample.value
    return found


def test_every_admin_request_is_one_counted_decision(
    client: TestClient, engine: Engine, names: tuple[str, str]
) -> None:
    acme, globex = names
    seed(engine, acme, 1)
    before = samples(client, "soma_auth_decisions_total")
    timed_before = samples(client, "soma_auth_duration_seconds_count")
    calls = [
        ("GET", "/admin/outbox", {"tenant": acme}, ACME_TOKEN, 200, ("outbox_list", "allowed")),
        ("GET", "/admin/outbox/stats", {"tenant": globex}, ACME_TOKEN, 403, ("outbox_stats", "denied")),
        ("GET", "/admin/outbox", {"tenant": acme}, "not-a-configured-token", 401, ("outbox_list", "unauthenticated")),
        ("GET", "/admin/dlq", {"tenant": acme}, None, 401, ("dlq_list", "unauthenticated")),
        ("GET", "/admin/dlq/dlq:0:999999999999", {}, ADMIN_TOKEN, 404, ("dlq_show", "allowed")),  # no such offset
        ("GET", "/admin/nowhere", {}, ADMIN_TOKEN, 404, ("other", "allowed")),
    ]
    for method, path, params, token, status, _ in calls:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        assert client.request(method, path, params=params, headers=headers).status_code == status, path
    acme_auth = {"Authorization": f"Bearer {ACME_TOKEN}"}
    replay = client.post("/admin/outbox/replay", json={"ids": [2**52]}, headers=acme_auth)
    assert replay.status_code == 403  # refused after the ids were looked up: still one decision
    after = samples(client, "soma_auth_decisions_total")
    timed = samples(client, "soma_auth_duration_seconds_count")
    expected: dict[tuple[str, str], int] = {("outbox_replay", "denied"): 1}
    for *_, labels in calls:
        expected[labels] = expected.get(labels, 0) + 1
    for labels, count in expected.items():
        assert after.get(labels, 0) - before.get(labels, 0) == count, labels
        assert timed.get(labels, 0) - timed_before.get(labels, 0) == count, labels
    # Not an authorization: health, readiness and the metrics endpoint itself.
    assert client.get("/healthz").status_code == 200
    assert samples(client, "soma_auth_decisions_total") == after
    text = client.get("/metrics").text
    for secret in (ACME_TOKEN, ADMIN_TOKEN, acme, globex, "not-a-configured-token"):
        assert secret not in text
