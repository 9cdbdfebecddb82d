"""Dead letters over the admin HTTP API against the real broker and PostgreSQL: list, show, redrive, scopes, audit.

The dead letters are written into a private `dlq` topic with the codec, exactly as a stream's
dead_letter() writes them (a valid original, a garbage original, and a `dlq` record that is not a
DeadLetter at all).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from outbox.admin.api import create_app
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.dlq.reader import DlqReader
from soma.dlq.select import DlqFilter, LetterId
from soma.settings import Settings
from tests.support.dlq import dead_letter, original, private_topics, read_all, write
from tests.support.outbox_admin import ACME_TOKEN, ADMIN_TOKEN, GLOBEX_TOKEN, audits_of, with_tokens

ADMIN, ACME, GLOBEX = ({"Authorization": f"Bearer {t}"} for t in (ADMIN_TOKEN, ACME_TOKEN, GLOBEX_TOKEN))
FORBIDDEN = {"detail": "forbidden: the token's scope does not cover this request"}


@dataclass(frozen=True)
class Letters:
    settings: Settings
    acme_chat: str  # a valid chat message of acme that a stream gave up on
    acme_garbage: str  # tool.requests bytes that do not decode
    globex_chat: str
    junk: str  # a dlq record that is not a DeadLetter
    originals: dict[str, tuple[bytes, bytes, dict[str, bytes]]]


@pytest.fixture(scope="module")
def letters(outbox_db: Settings, names: tuple[str, str]) -> Letters:
    acme, globex = names
    own = private_topics(with_tokens(outbox_db, acme, globex), "dlq", "chat.messages", "tool.requests")
    catalog = load_catalog()
    codec = Codec(catalog, own)
    a_key, a_value, a_headers = original(catalog, codec, own, acme, 1)
    g_key, g_value, g_headers = original(catalog, codec, own, globex, 2)
    ids = write(own, codec, [
        dead_letter(acme, key=a_key, value=a_value, headers=a_headers, error="ValueError: tool 'x' unknown"),
        dead_letter(acme, key=b"k", value=b"\x00\x01garbage", headers={"tenant": acme.encode()},
                    source_topic="tool.requests", stream="tools", error_type="decode", error="not Avro"),
        dead_letter(globex, key=g_key, value=g_value, headers=g_headers, error="KeyError: 'session'"),
    ], raw=[b"not a dead letter"])
    chat, garbage, theirs, junk = (str(i) for i in ids)
    return Letters(own, chat, garbage, theirs, junk, {chat: (a_key, a_value, a_headers)})


@pytest.fixture(scope="module")
def client(letters: Letters, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(letters.settings, engine=engine), raise_server_exceptions=False) as client:
        yield client


def ids_of(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_list_filters(client: TestClient, letters: Letters, names: tuple[str, str]) -> None:
    acme, globex = names
    everything = client.get("/admin/dlq", headers=ADMIN)
    assert ids_of(everything) == [letters.acme_chat, letters.acme_garbage, letters.globex_chat, letters.junk]
    assert everything.json()["complete"]
    assert everything.json()["next_after"] is None
    assert ids_of(client.get("/admin/dlq", params={"tenant": acme}, headers=ADMIN)) == [
        letters.acme_chat, letters.acme_garbage]
    assert ids_of(client.get("/admin/dlq", params={"source_topic": "tool.requests"}, headers=ADMIN)) == [
        letters.acme_garbage]
    assert ids_of(client.get("/admin/dlq", params={"reason": "KEYERROR"}, headers=ADMIN)) == [letters.globex_chat]
    assert ids_of(client.get("/admin/dlq", params={"error_type": "decode", "stream": "tools"}, headers=ADMIN)) == [
        letters.acme_garbage]
    assert ids_of(client.get("/admin/dlq", params={"since": "2999-01-01T00:00:00Z"}, headers=ADMIN)) == []
    assert ids_of(client.get("/admin/dlq", params={"until": "2000-01-01T00:00:00Z"}, headers=ADMIN)) == []
    first = client.get("/admin/dlq", params={"limit": 1, "tenant": globex}, headers=ADMIN)
    assert ids_of(first) == [letters.globex_chat]
    assert first.json()["next_after"] == letters.globex_chat
    assert not first.json()["complete"]
    rest = client.get("/admin/dlq", params={"after": first.json()["next_after"], "tenant": globex}, headers=ADMIN)
    assert ids_of(rest) == []
    assert rest.json()["complete"]


def test_show_decodes_the_original_or_says_why_not(
    client: TestClient, letters: Letters, names: tuple[str, str]
) -> None:
    chat = client.get(f"/admin/dlq/{letters.acme_chat}", headers=ADMIN).json()
    assert chat["tenant"] == names[0]
    assert chat["source_topic"] == "chat.messages"
    assert chat["original"]["value"]["content"] == "hello 1"
    assert chat["original_key"] == letters.originals[letters.acme_chat][0].decode()
    assert chat["original_headers"]["tenant"] == names[0]
    garbage = client.get(f"/admin/dlq/{letters.acme_garbage}", headers=ACME).json()
    assert garbage["original"]["value"] is None
    assert garbage["original"]["not_decodable"].startswith("tool.requests: ")
    assert garbage["original"]["preview_hex"] == b"\x00\x01garbage".hex()
    junk = client.get(f"/admin/dlq/{letters.junk}", headers=ADMIN).json()
    assert junk["error_type"] == "undecodable-dead-letter"
    assert junk["original"]["not_decodable"]
    missing = client.get("/admin/dlq/dlq:0:999999", headers=ADMIN)
    assert missing.status_code == 404
    assert "dlq:0:999999" in missing.json()["detail"]


def test_bad_filters_are_422_naming_the_field(client: TestClient) -> None:
    for params, field in (({"since": "yesterday"}, "since"), ({"source_topic": "no.such"}, "source_topic"),
                          ({"limit": 0}, "limit"), ({"after": "0:1"}, "after"), ({"reason": "a\x01"}, "reason"),
                          ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until")):
        response = client.get("/admin/dlq", params=params, headers=ADMIN)
        assert response.status_code == 422, (params, response.text)
        assert any(item["loc"][-1] == field for item in response.json()["detail"]), (field, response.text)
    assert client.get("/admin/dlq/42", headers=ADMIN).status_code == 422


def test_a_tenant_token_sees_and_redrives_only_its_tenant(
    client: TestClient, letters: Letters, engine: Engine, names: tuple[str, str]
) -> None:
    _acme, globex = names
    assert ids_of(client.get("/admin/dlq", headers=ACME)) == [letters.acme_chat, letters.acme_garbage]
    assert ids_of(client.get("/admin/dlq", headers=GLOBEX)) == [letters.globex_chat]
    assert client.get("/admin/dlq", params={"tenant": globex}, headers=ACME).json() == FORBIDDEN
    for letter_id in (letters.globex_chat, letters.junk, "dlq:0:999999"):  # theirs, nobody's, missing: the same
        response = client.get(f"/admin/dlq/{letter_id}", headers=ACME)
        assert (response.status_code, response.json()) == (403, FORBIDDEN)
    before = len(read_all(letters.settings, "chat.messages"))
    for body in ({"ids": [letters.globex_chat]}, {"ids": [letters.acme_chat, letters.globex_chat]},
                 {"ids": [letters.acme_chat], "tenant": globex}):
        response = client.post("/admin/dlq/redrive", json=body, headers=ACME)
        assert (response.status_code, response.json()) == (403, FORBIDDEN)
    response = client.post("/admin/dlq/redrive/filter", json={"tenant": globex}, headers=ACME)
    assert response.status_code == 403
    assert len(read_all(letters.settings, "chat.messages")) == before
    assert [a for a in audits_of(engine, globex) if a["action"] == "dlq.redrive"] == []


def test_redrive_lands_on_the_source_topic_with_redrive_of_and_is_audited(
    client: TestClient, letters: Letters, engine: Engine, names: tuple[str, str]
) -> None:
    acme, _ = names
    before = len(read_all(letters.settings, "chat.messages"))
    dry = client.post("/admin/dlq/redrive", json={"ids": [letters.acme_chat], "dry_run": True}, headers=ACME)
    assert dry.status_code == 200
    assert dry.json()["outcome"] == "dry_run"
    assert dry.json()["audit_event_id"] is None
    assert len(read_all(letters.settings, "chat.messages")) == before

    response = client.post("/admin/dlq/redrive", json={"ids": [letters.acme_chat]}, headers=ACME)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["tenant"], result["count"], result["outcome"], result["failed"]) == (acme, 1, "ok", {})
    (landed,) = result["redriven"]
    records = read_all(letters.settings, "chat.messages")
    (msg,) = [m for m in records if m.offset() == landed["offset"]]
    key, value, headers = letters.originals[letters.acme_chat]
    assert (msg.key(), msg.value()) == (key, value)
    got = dict(msg.headers())
    assert got["redrive-of"] == letters.acme_chat.encode()
    assert {name: got[name] for name in headers} == headers  # the original headers, unchanged

    audits = [a for a in audits_of(engine, acme) if a["event_id"] == result["audit_event_id"]]
    assert len(audits) == 1
    audit = audits[0]
    assert (audit["action"], audit["outcome"]) == ("dlq.redrive", "ok")
    assert audit["actor"].startswith("token-")  # the scoped token's audit name, never the token
    assert audit["details"]["ids"] == [letters.acme_chat]
    assert audit["details"]["redriven"][0]["offset"] == landed["offset"]


def test_redrive_by_filter_and_what_cannot_be_redriven(
    client: TestClient, letters: Letters, names: tuple[str, str]
) -> None:
    acme, _ = names
    preview = client.post("/admin/dlq/redrive/filter", json={"tenant": acme, "source_topic": "chat.messages",
                                                              "dry_run": True}, headers=ADMIN)
    assert preview.status_code == 200, preview.text
    assert (preview.json()["count"], preview.json()["ids"]) == (1, [letters.acme_chat])
    junk = client.post("/admin/dlq/redrive", json={"ids": [letters.junk]}, headers=ADMIN)
    assert junk.status_code == 422
    assert "does not decode" in junk.json()["detail"][0]["msg"]
    mixed = client.post("/admin/dlq/redrive", json={"ids": [letters.acme_chat, letters.globex_chat]}, headers=ADMIN)
    assert mixed.status_code == 422
    assert mixed.json()["detail"][0]["loc"] == ["body", "ids"]
    unknown = client.post("/admin/dlq/redrive", json={"ids": ["dlq:0:999999"]}, headers=ADMIN)
    assert unknown.status_code == 404


def test_the_routes_are_in_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/admin/dlq", "/admin/dlq/{letter_id}", "/admin/dlq/redrive", "/admin/dlq/redrive/filter"} <= set(paths)


def test_an_empty_or_missing_dlq_topic_answers_at_once(outbox_db: Settings) -> None:
    codec = Codec(load_catalog(), outbox_db)
    for own, exists in ((private_topics(outbox_db, "dlq"), True), (private_topics(outbox_db), False)):
        reader = DlqReader(own, codec, deadline_s=30)  # a read that waited for records would take 30 s
        try:
            started = time.monotonic()
            page = reader.scan(DlqFilter(), limit=10)
            assert time.monotonic() - started < 10
            assert (page.items, page.complete, page.topic_exists) == ([], True, exists)
            assert reader.get_many([LetterId(0, 0)]) == {}
        finally:
            reader.close()
