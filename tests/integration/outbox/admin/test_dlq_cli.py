"""`soma dlq list|show|redrive` as real subprocesses against the real broker and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.settings import Settings
from tests.integration.outbox.admin.test_cli import as_json, one_line_error, soma
from tests.support.dlq import dead_letter, original, private_topics, read_all, write
from tests.support.outbox_admin import ACME_TOKEN, audits_of, with_tokens


@pytest.fixture(scope="module")
def own(outbox_db: Settings, names: tuple[str, str]) -> Settings:
    return private_topics(with_tokens(outbox_db, *names), "dlq", "chat.messages")


@pytest.fixture(scope="module")
def ids(own: Settings, names: tuple[str, str]) -> tuple[str, str]:
    """One dead letter of each tenant (a valid chat message a stream gave up on)."""
    catalog = load_catalog()
    codec = Codec(catalog, own)
    letters = []
    for n, tenant in enumerate(names, 1):
        key, value, headers = original(catalog, codec, own, tenant, n)
        letters.append(dead_letter(tenant, key=key, value=value, headers=headers, error=f"ValueError: case {n}"))
    first, second = write(own, codec, letters)
    return str(first), str(second)


@pytest.fixture
def acme_token(tmp_path: Path) -> str:
    path = tmp_path / "token"
    path.write_text(ACME_TOKEN + "\n")
    return str(path)


def test_list_and_show(own: Settings, ids: tuple[str, str], names: tuple[str, str]) -> None:
    acme, globex = names
    listed = as_json(soma(own, "dlq", "list", "--json"))
    assert [item["id"] for item in listed["items"]] == list(ids)
    assert listed["complete"]
    assert [i["tenant"] for i in as_json(soma(own, "dlq", "list", "--tenant", globex, "--json"))["items"]] == [globex]
    table = soma(own, "dlq", "list", "--reason", "case 1")
    assert table.returncode == 0, table.stderr
    assert ids[0] in table.stdout
    assert ids[1] not in table.stdout
    shown = as_json(soma(own, "dlq", "show", ids[0], "--json"))
    assert (shown["tenant"], shown["original"]["value"]["content"]) == (acme, "hello 1")
    text = soma(own, "dlq", "show", ids[0])
    assert text.returncode == 0
    assert "hello 1" in text.stdout
    assert "redrive" not in text.stderr


def test_bad_input_is_one_line_naming_the_field(own: Settings, ids: tuple[str, str]) -> None:
    assert "since" in one_line_error(soma(own, "dlq", "list", "--since", "soon"))
    assert "source_topic" in one_line_error(soma(own, "dlq", "list", "--source-topic", "no.such"))
    assert "ID" in one_line_error(soma(own, "dlq", "show", "12"))
    assert "dlq:0:999999" in one_line_error(soma(own, "dlq", "show", "dlq:0:999999"))
    assert "--tenant" in one_line_error(soma(own, "dlq", "redrive"))


def test_a_tenant_token_cannot_see_or_redrive_another_tenants(
    own: Settings, ids: tuple[str, str], names: tuple[str, str], acme_token: str, engine: Engine
) -> None:
    acme, globex = names
    listed = as_json(soma(own, "dlq", "list", "--json", "--token-file", acme_token))
    assert [item["tenant"] for item in listed["items"]] == [acme]
    for args in (("list", "--tenant", globex), ("show", ids[1]), ("redrive", "--ids", ids[1]),
                 ("redrive", "--tenant", globex)):
        error = one_line_error(soma(own, "dlq", *args, "--token-file", acme_token))
        assert error == "soma: error: forbidden: the token's scope does not cover this request", args
    assert [a for a in audits_of(engine, globex) if a["action"] == "dlq.redrive"] == []


def test_redrive_by_id_lands_and_is_audited(
    own: Settings, ids: tuple[str, str], names: tuple[str, str], acme_token: str, engine: Engine
) -> None:
    acme, _ = names
    before = len(read_all(own, "chat.messages"))
    dry = soma(own, "dlq", "redrive", "--ids", ids[0], "--dry-run", "--token-file", acme_token)
    assert dry.returncode == 0, dry.stderr
    assert "would redrive 1" in dry.stdout
    assert len(read_all(own, "chat.messages")) == before
    result = as_json(soma(own, "dlq", "redrive", "--ids", ids[0], "--json", "--token-file", acme_token))
    assert (result["count"], result["outcome"]) == (1, "ok")
    records = read_all(own, "chat.messages")
    assert len(records) == before + 1
    assert dict(records[-1].headers())["redrive-of"] == ids[0].encode()
    (audit,) = [a for a in audits_of(engine, acme) if a["event_id"] == result["audit_event_id"]]
    assert (audit["action"], audit["details"]["ids"]) == ("dlq.redrive", [ids[0]])
    by_filter = soma(own, "dlq", "redrive", "--tenant", acme, "--reason", "case 1")  # as the terminal user
    assert by_filter.returncode == 0, by_filter.stderr
    assert "redrove 1 dead letter(s)" in by_filter.stdout
    assert len(read_all(own, "chat.messages")) == before + 2
